using System.Text.Json;
using System.Text.RegularExpressions;

namespace Engine.Runtime.Tokenization;

/// <summary>A tokenizer.json "normalizer": rewrites each stretch of text between added tokens before it is split.</summary>
internal abstract class TextNormalizer
{
    public abstract string Normalize(string text);

    /// <exception cref="InvalidDataException">An unsupported normalizer type or a malformed entry.</exception>
    public static TextNormalizer? FromJson(JsonElement? element, JsonFile file)
    {
        if (element is not { } normalizer) return null;
        string type = file.RequiredString(normalizer, "type");
        return type switch
        {
            "NFC" => new NfcNormalizer(),
            "Sequence" => new SequenceNormalizer([.. file.RequiredMember(normalizer, "normalizers", JsonValueKind.Array).EnumerateArray().Select(n => FromJson(n, file)!)]),
            "Prepend" => new PrependNormalizer(file.RequiredString(normalizer, "prepend")),
            "Replace" => new ReplaceNormalizer(SplitPattern.FromJson(normalizer, file).Regex, file.RequiredString(normalizer, "content")),
            _ => throw file.Error($"normalizer type '{type}' is not supported (supported: NFC, Sequence, Prepend, Replace)"),
        };
    }
}

internal sealed class NfcNormalizer : TextNormalizer
{
    public override string Normalize(string text) => Nfc.Normalize(text);
}

internal sealed class SequenceNormalizer(IReadOnlyList<TextNormalizer> steps) : TextNormalizer
{
    public override string Normalize(string text) => steps.Aggregate(text, (current, step) => step.Normalize(current));
}

/// <summary>Puts a prefix before non-empty text (SentencePiece-style files prepend "▁").</summary>
internal sealed class PrependNormalizer(string prefix) : TextNormalizer
{
    public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
}

internal sealed class ReplaceNormalizer(Regex pattern, string replacement) : TextNormalizer
{
    public override string Normalize(string text) => pattern.Replace(text, replacement.Replace("$", "$$", StringComparison.Ordinal));
}
