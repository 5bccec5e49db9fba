using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// A tokenizer.json "decoder": turns the tokens' pieces back into text, step by step over the list of pieces
/// (Hugging Face's decode_chain); the final text is the concatenation of what the last step returns.
/// </summary>
internal abstract class TokenDecoder
{
    public abstract List<string> Decode(List<string> pieces);

    /// <exception cref="InvalidDataException">An unsupported decoder type or a malformed entry.</exception>
    public static TokenDecoder? FromJson(JsonElement? element, JsonFile file)
    {
        if (element is not { } decoder) return null;
        string type = file.RequiredString(decoder, "type");
        return type switch
        {
            "Sequence" => new SequenceDecoder([.. file.RequiredMember(decoder, "decoders", JsonValueKind.Array).EnumerateArray().Select(d => FromJson(d, file)!)]),
            "ByteLevel" => new ByteLevelDecoder(),
            "Replace" => new ReplaceDecoder(SplitPattern.FromJson(decoder, file).Regex, file.RequiredString(decoder, "content")),
            "ByteFallback" => new ByteFallbackDecoder(),
            "Fuse" => new FuseDecoder(),
            "Strip" => StripDecoder.FromJson(decoder, file),
            "Metaspace" => MetaspaceDecoder.FromJson(decoder, file),
            _ => throw file.Error($"decoder type '{type}' is not supported (supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace)"),
        };
    }
}

internal sealed class SequenceDecoder(IReadOnlyList<TokenDecoder> steps) : TokenDecoder
{
    public override List<string> Decode(List<string> pieces) => steps.Aggregate(pieces, (current, step) => step.Decode(current));
}

/// <summary>
/// Byte-level pieces back to bytes, then UTF-8 (invalid sequences become U+FFFD). A piece with a character outside
/// the byte alphabet (an added token such as "<think>" may have one) contributes its own UTF-8 bytes.
/// </summary>
internal sealed class ByteLevelDecoder : TokenDecoder
{
    public override List<string> Decode(List<string> pieces)
    {
        var bytes = new List<byte>();
        foreach (string piece in pieces)
            if (!ByteLevelAlphabet.TryAppendBytes(piece, bytes))
                bytes.AddRange(Encoding.UTF8.GetBytes(piece));
        return [Encoding.UTF8.GetString(bytes.ToArray())];
    }
}

internal sealed class ReplaceDecoder(Regex pattern, string replacement) : TokenDecoder
{
    public override List<string> Decode(List<string> pieces) =>
        [.. pieces.Select(p => pattern.Replace(p, replacement.Replace("$", "$$", StringComparison.Ordinal)))];
}

/// <summary>
/// SentencePiece byte pieces ("&lt;0xE6&gt;") back to text: each run of them is decoded as UTF-8. Invalid bytes get
/// the standard replacement (Hugging Face instead writes one U+FFFD per byte when a run is invalid anywhere), so
/// the text of a run's valid beginning does not change when a later byte turns out wrong, as streaming needs.
/// </summary>
internal sealed class ByteFallbackDecoder : TokenDecoder
{
    public override List<string> Decode(List<string> pieces)
    {
        var decoded = new List<string>(pieces.Count);
        var run = new List<byte>();
        foreach (string piece in pieces)
        {
            if (BytePiece.TryParse(piece, out byte value))
            {
                run.Add(value);
                continue;
            }
            FlushRun(run, decoded);
            decoded.Add(piece);
        }
        FlushRun(run, decoded);
        return decoded;
    }

    private static void FlushRun(List<byte> run, List<string> decoded)
    {
        if (run.Count == 0) return;
        decoded.Add(Encoding.UTF8.GetString(run.ToArray()));
        run.Clear();
    }
}

internal sealed class FuseDecoder : TokenDecoder
{
    public override List<string> Decode(List<string> pieces) => [string.Concat(pieces)];
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing copies of a character from every piece.</summary>
internal sealed class StripDecoder(char content, int start, int stop) : TokenDecoder
{
    public static StripDecoder FromJson(JsonElement element, JsonFile file)
    {
        string content = file.RequiredString(element, "content");
        if (content.Length != 1) throw file.Error($"Strip decoder content '{content}' should be one character");
        return new StripDecoder(content[0], file.OptionalInt(element, "start") ?? 0, file.OptionalInt(element, "stop") ?? 0);
    }

    public override List<string> Decode(List<string> pieces) => [.. pieces.Select(Strip)];

    private string Strip(string piece)
    {
        int first = 0, end = piece.Length;
        while (first < start && first < end && piece[first] == content) first++;
        while (piece.Length - end < stop && end > first && piece[end - 1] == content) end--;
        return piece[first..end];
    }
}

/// <summary>
/// "▁" back to spaces, except in the very first piece, where the encoder put them and they are dropped (as Hugging
/// Face's Metaspace decoder does unless prepend_scheme is "never").
/// </summary>
internal sealed class MetaspaceDecoder(char replacement, bool dropsFromFirstPiece) : TokenDecoder
{
    public static MetaspaceDecoder FromJson(JsonElement element, JsonFile file)
    {
        var settings = MetaspacePreTokenizer.FromJson(element, file);
        return new MetaspaceDecoder(settings.Replacement, settings.PrependScheme != MetaspacePreTokenizer.Prepend.Never);
    }

    public override List<string> Decode(List<string> pieces) =>
        [.. pieces.Select((piece, i) => i == 0 && dropsFromFirstPiece ? piece.Replace(replacement.ToString(), "") : piece.Replace(replacement, ' '))];
}
