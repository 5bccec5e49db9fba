using System.Text.Json;
using System.Text.RegularExpressions;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// The "pattern" of a tokenizer.json Split, Replace or decoder entry: {"String": literal} or {"Regex": pattern}.
/// Regex patterns come from Oniguruma (Rust tokenizers); the ones tokenizers use ((?i:...), \p{L}, \p{N}, \s,
/// lookahead) mean the same in .NET once matched over code points (<see cref="CodePointRegex"/>).
/// </summary>
internal sealed class SplitPattern
{
    private readonly CodePointRegex? _overCodePoints;

    private SplitPattern(Regex regex, bool isLiteral)
    {
        Regex = regex;
        _overCodePoints = isLiteral ? null : new CodePointRegex(regex);
    }

    public Regex Regex { get; }

    public static SplitPattern FromJson(JsonElement owner, JsonFile file)
    {
        var pattern = file.RequiredMember(owner, "pattern", JsonValueKind.Object);
        if (file.OptionalString(pattern, "String") is { } literal)
            return new SplitPattern(new Regex(Regex.Escape(literal), RegexOptions.CultureInvariant), isLiteral: true);
        string expression = file.OptionalString(pattern, "Regex") ?? throw file.Error("a pattern needs 'String' or 'Regex'");
        try
        {
            return new SplitPattern(new Regex(expression, RegexOptions.CultureInvariant | RegexOptions.Compiled), isLiteral: false);
        }
        catch (ArgumentException e)
        {
            throw file.Error($"pattern '{expression}' is not a regular expression .NET accepts ({e.Message})");
        }
    }

    /// <summary>The (start, end) ranges of the successive matches.</summary>
    public List<(int Start, int End)> Matches(string text)
    {
        if (_overCodePoints is not null) return _overCodePoints.Matches(text);
        var ranges = new List<(int Start, int End)>();
        for (var match = Regex.Match(text); match.Success; match = match.NextMatch())
            ranges.Add((match.Index, match.Index + match.Length));
        return ranges;
    }
}
