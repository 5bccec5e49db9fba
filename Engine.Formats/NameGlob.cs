using System.Globalization;
using System.Text.RegularExpressions;

namespace Engine.Formats;

/// <summary>
/// A glob on a whole tensor name: <c>*</c> matches any run of characters (dots included), <c>?</c> one character, and
/// <c>{layer}</c> a layer number, which <see cref="Layer"/> returns.
/// </summary>
public sealed class NameGlob
{
    private const string LayerField = "{layer}";
    private readonly Regex _regex;

    public NameGlob(string glob)
    {
        ArgumentException.ThrowIfNullOrEmpty(glob);
        Text = glob;
        string regex = Regex.Escape(glob)
            .Replace(@"\*", ".*", StringComparison.Ordinal)
            .Replace(@"\?", ".", StringComparison.Ordinal)
            .Replace(Regex.Escape(LayerField), @"(?<layer>\d+)", StringComparison.Ordinal);
        _regex = new Regex("^" + regex + "$", RegexOptions.CultureInvariant);
    }

    public string Text { get; }

    public bool Matches(string name) => _regex.IsMatch(name);

    /// <summary>The number the <c>{layer}</c> field matched, or null when the name does not match or the glob has no such field.</summary>
    public int? Layer(string name)
    {
        var match = _regex.Match(name);
        return match.Success && match.Groups["layer"].Success ? int.Parse(match.Groups["layer"].ValueSpan, CultureInfo.InvariantCulture) : null;
    }

    public override string ToString() => Text;
}
