namespace Engine.Runtime.Tokenization;

/// <summary>
/// Turns generated ids into text as they arrive. A token can end inside a UTF-8 character (SentencePiece byte
/// fallback, byte-level BPE), and SentencePiece drops the space of the first piece, so a token's text depends on its
/// neighbours: each step decodes the last emitted token(s) with and without the new ones and returns the difference,
/// holding it back while it ends in U+FFFD (an incomplete character). Concatenating everything returned, Flush
/// included, gives <see cref="TextTokenizer.Decode"/> of all the ids.
/// </summary>
public sealed class StreamingDecoder
{
    private readonly TextTokenizer _tokenizer;
    private readonly List<int> _ids = [];
    // _ids[_prefixStart.._readStart] were emitted last: decoding them again gives the context the next piece needs.
    private int _prefixStart;
    private int _readStart;

    internal StreamingDecoder(TextTokenizer tokenizer) => _tokenizer = tokenizer;

    /// <summary>Adds a token and returns the text it completes (possibly empty).</summary>
    public string Append(int id)
    {
        _ids.Add(id);
        string context = Decode(_prefixStart, _readStart);
        string text = Decode(_prefixStart, _ids.Count);
        if (text.Length <= context.Length || text.EndsWith('\uFFFD') || !text.StartsWith(context, StringComparison.Ordinal))
            return "";
        _prefixStart = _readStart;
        _readStart = _ids.Count;
        return text[context.Length..];
    }

    /// <summary>Returns whatever is still held back (an incomplete character comes out as U+FFFD).</summary>
    public string Flush()
    {
        string context = Decode(_prefixStart, _readStart);
        string text = Decode(_prefixStart, _ids.Count);
        _prefixStart = _readStart = _ids.Count;
        return text.StartsWith(context, StringComparison.Ordinal) ? text[context.Length..] : "";
    }

    private string Decode(int start, int end) => _tokenizer.Decode(_ids.GetRange(start, end - start));
}
