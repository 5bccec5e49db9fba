using Engine.Formats;

namespace Engine.Quantizers;

/// <summary>
/// A per-tensor exception to the quantization recipe (<c>engine quantize --keep</c>): <c>PATTERN</c> keeps the
/// matching tensors in their source format, <c>PATTERN=FORMAT</c> stores them in FORMAT with its default parameters
/// (the recipe's, when FORMAT is the recipe's format). PATTERN is a glob on the whole tensor name: <c>*</c> matches
/// any run of characters (dots included), <c>?</c> one character.
/// </summary>
public sealed record TensorOverride(string Text, NameGlob Pattern, WeightFormat? Format)
{
    public static TensorOverride Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int equals = text.LastIndexOf('=');
        string glob = equals < 0 ? text : text[..equals];
        WeightFormat? format = null;
        if (equals >= 0)
        {
            string name = text[(equals + 1)..];
            if (!WeightTypes.TryGet(name, out format))
                throw new ArgumentException($"--keep {text}: unknown format '{name}' (known: {string.Join(", ", WeightTypes.All.Select(f => f.Name))})");
        }
        if (glob.Length == 0) throw new ArgumentException($"--keep {text}: the pattern is empty");
        return new TensorOverride(text, new NameGlob(glob), format);
    }

    public bool Matches(string tensorName) => Pattern.Matches(tensorName);

    public override string ToString() => Text;
}
