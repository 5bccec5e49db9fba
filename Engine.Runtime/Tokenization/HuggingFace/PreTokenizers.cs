using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// A tokenizer.json "pre_tokenizer": cuts normalized text into pieces that the BPE model encodes separately (and,
/// for byte-level files, spells each piece's UTF-8 bytes in <see cref="ByteLevelAlphabet"/>).
/// </summary>
internal abstract class PreTokenizer
{
    /// <param name="piece">Text to cut further.</param>
    /// <param name="atTextStart">Whether the piece begins the text (Metaspace's prepend_scheme "first").</param>
    public abstract List<string> Split(string piece, bool atTextStart);

    /// <exception cref="InvalidDataException">An unsupported pre-tokenizer type or a malformed entry.</exception>
    public static PreTokenizer? FromJson(JsonElement? element, JsonFile file)
    {
        if (element is not { } preTokenizer) return null;
        string type = file.RequiredString(preTokenizer, "type");
        return type switch
        {
            "Sequence" => new SequencePreTokenizer([.. file.RequiredMember(preTokenizer, "pretokenizers", JsonValueKind.Array).EnumerateArray().Select(p => FromJson(p, file)!)]),
            "Split" => new SplitPreTokenizer(SplitPattern.FromJson(preTokenizer, file), ParseBehavior(file.RequiredString(preTokenizer, "behavior"), file),
                file.OptionalBool(preTokenizer, "invert") ?? false),
            "ByteLevel" => new ByteLevelPreTokenizer(file.OptionalBool(preTokenizer, "add_prefix_space") ?? true, file.OptionalBool(preTokenizer, "use_regex") ?? true),
            "Digits" => new DigitsPreTokenizer(file.OptionalBool(preTokenizer, "individual_digits") ?? false),
            "Metaspace" => MetaspacePreTokenizer.FromJson(preTokenizer, file),
            _ => throw file.Error($"pre_tokenizer type '{type}' is not supported (supported: Sequence, Split, ByteLevel, Digits, Metaspace)"),
        };
    }

    private static SplitBehavior ParseBehavior(string behavior, JsonFile file) =>
        Enum.TryParse<SplitBehavior>(behavior, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed)
            ? parsed
            : throw file.Error($"split behavior '{behavior}' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");

    /// <summary>
    /// Cuts <paramref name="text"/> at the given matches as Hugging Face's NormalizedString.split does: the matches
    /// and the stretches between them are parts, and <paramref name="behavior"/> says what happens to the matches.
    /// </summary>
    protected static List<string> SplitAt(string text, List<(int Start, int End)> matches, SplitBehavior behavior, bool invert = false)
    {
        var parts = new List<(int Start, int End, bool IsMatch)>();
        int previousEnd = 0;
        foreach (var (start, end) in matches)
        {
            if (start > previousEnd) parts.Add((previousEnd, start, invert));
            parts.Add((start, end, !invert));
            previousEnd = end;
        }
        if (previousEnd < text.Length) parts.Add((previousEnd, text.Length, invert));

        var pieces = new List<(int Start, int End)>();
        switch (behavior)
        {
            case SplitBehavior.Removed:
                pieces.AddRange(parts.Where(p => !p.IsMatch).Select(p => (p.Start, p.End)));
                break;
            case SplitBehavior.Isolated:
                pieces.AddRange(parts.Select(p => (p.Start, p.End)));
                break;
            case SplitBehavior.Contiguous:
                for (int i = 0; i < parts.Count; i++)
                {
                    if (i > 0 && parts[i].IsMatch == parts[i - 1].IsMatch) pieces[^1] = (pieces[^1].Start, parts[i].End);
                    else pieces.Add((parts[i].Start, parts[i].End));
                }
                break;
            case SplitBehavior.MergedWithPrevious:
                for (int i = 0; i < parts.Count; i++)
                {
                    if (i > 0 && parts[i].IsMatch && !parts[i - 1].IsMatch) pieces[^1] = (pieces[^1].Start, parts[i].End);
                    else pieces.Add((parts[i].Start, parts[i].End));
                }
                break;
            case SplitBehavior.MergedWithNext:
                for (int i = parts.Count - 1; i >= 0; i--)
                {
                    if (i < parts.Count - 1 && parts[i].IsMatch && !parts[i + 1].IsMatch) pieces[^1] = (parts[i].Start, pieces[^1].End);
                    else pieces.Add((parts[i].Start, parts[i].End));
                }
                pieces.Reverse();
                break;
        }
        return [.. pieces.Where(p => p.End > p.Start).Select(p => text[p.Start..p.End])];
    }
}

internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

internal sealed class SequencePreTokenizer(IReadOnlyList<PreTokenizer> steps) : PreTokenizer
{
    public override List<string> Split(string piece, bool atTextStart)
    {
        var pieces = new List<(string Text, bool AtTextStart)> { (piece, atTextStart) };
        foreach (var step in steps)
            pieces = [.. pieces.SelectMany(p => step.Split(p.Text, p.AtTextStart).Select((text, i) => (text, p.AtTextStart && i == 0)))];
        return [.. pieces.Select(p => p.Text)];
    }
}

internal sealed class SplitPreTokenizer(SplitPattern pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    public override List<string> Split(string piece, bool atTextStart) => SplitAt(piece, pattern.Matches(piece), behavior, invert);
}

/// <summary>
/// Byte-level BPE's step: optionally a space before the piece and GPT-2's split pattern, then every piece spelled
/// in the byte alphabet (so the model never meets an unknown character).
/// </summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    private static readonly CodePointRegex Gpt2Pattern = new(new Regex(
        @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.CultureInvariant | RegexOptions.Compiled));

    public override List<string> Split(string piece, bool atTextStart)
    {
        if (addPrefixSpace && !piece.StartsWith(' ')) piece = " " + piece;
        var pieces = useRegex ? SplitAt(piece, Gpt2Pattern.Matches(piece), SplitBehavior.Isolated) : [piece];
        return [.. pieces.Select(ByteLevelAlphabet.Encode)];
    }
}

/// <summary>Digits apart from the rest: each alone (individual_digits) or in runs.</summary>
internal sealed class DigitsPreTokenizer(bool individualDigits) : PreTokenizer
{
    public override List<string> Split(string piece, bool atTextStart)
    {
        var digits = new List<(int Start, int End)>();
        int offset = 0;
        foreach (var rune in piece.EnumerateRunes())
        {
            if (Rune.IsNumber(rune)) digits.Add((offset, offset + rune.Utf16SequenceLength));
            offset += rune.Utf16SequenceLength;
        }
        return SplitAt(piece, digits, individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous);
    }
}

/// <summary>
/// SentencePiece-style files: spaces become "▁", a "▁" goes in front (always, or only at the start of the text),
/// and the text is cut before each "▁".
/// </summary>
internal sealed class MetaspacePreTokenizer(char replacement, MetaspacePreTokenizer.Prepend prepend, bool split) : PreTokenizer
{
    public enum Prepend { Always, First, Never }

    public char Replacement => replacement;
    public Prepend PrependScheme => prepend;

    public static MetaspacePreTokenizer FromJson(JsonElement element, JsonFile file)
    {
        string replacement = file.OptionalString(element, "replacement") ?? "\u2581";
        if (replacement.Length != 1) throw file.Error($"Metaspace replacement '{replacement}' should be one character");
        // Older files say add_prefix_space instead of prepend_scheme.
        var prepend = file.OptionalString(element, "prepend_scheme") switch
        {
            null => file.OptionalBool(element, "add_prefix_space") ?? true ? Prepend.Always : Prepend.Never,
            "always" => Prepend.Always,
            "first" => Prepend.First,
            "never" => Prepend.Never,
            var other => throw file.Error($"Metaspace prepend_scheme '{other}' is not one of always, first, never"),
        };
        return new MetaspacePreTokenizer(replacement[0], prepend, file.OptionalBool(element, "split") ?? true);
    }

    public override List<string> Split(string piece, bool atTextStart)
    {
        piece = piece.Replace(' ', replacement);
        if ((prepend == Prepend.Always || prepend == Prepend.First && atTextStart) && !piece.StartsWith(replacement))
            piece = replacement + piece;
        if (!split) return [piece];
        var marks = new List<(int Start, int End)>();
        for (int i = piece.IndexOf(replacement); i >= 0; i = piece.IndexOf(replacement, i + 1)) marks.Add((i, i + 1));
        return SplitAt(piece, marks, SplitBehavior.MergedWithNext);
    }
}
