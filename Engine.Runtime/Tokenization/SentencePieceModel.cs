using System.Text;
using Microsoft.ML.Tokenizers;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// A SentencePiece tokenizer.model through Microsoft.ML.Tokenizers. The whitespace normalization (trim and collapse
/// spaces when the model asks for it, the dummy-prefix "▁", spaces as "▁") is done here and ML.Tokenizers only runs
/// the pieces: its normalizer (2.0.1) turns any text with a single non-space character ("a", " x ") into nothing.
/// Only the identity normalization rule is applied, as llama.cpp does: the precompiled character maps (nmt_nfkc)
/// belong to T5-style models, not to the LLM tokenizers this engine loads.
/// </summary>
internal sealed class SentencePieceModel : ITokenModel
{
    private const char SpaceSymbol = '\u2581';

    private readonly SentencePieceTokenizer _tokenizer;
    private readonly SentencePieceNormalizer _whitespace;
    private readonly string?[] _pieces;
    private readonly Dictionary<int, AddedToken> _addedBeyondPieces;

    private SentencePieceModel(SentencePieceTokenizer tokenizer, SentencePieceNormalizer whitespace, IReadOnlyList<AddedToken> configAddedTokens)
    {
        _tokenizer = tokenizer;
        _whitespace = whitespace;
        _pieces = new string?[tokenizer.Vocabulary.Values.Max() + 1];
        foreach (var (piece, id) in tokenizer.Vocabulary) _pieces[id] = piece;

        var controlPieces = new List<AddedToken>();
        foreach (var (id, piece) in new[] { (tokenizer.BeginningOfSentenceId, tokenizer.BeginningOfSentenceToken), (tokenizer.EndOfSentenceId, tokenizer.EndOfSentenceToken), (tokenizer.UnknownId, tokenizer.UnknownToken) })
            if (id >= 0 && !string.IsNullOrEmpty(piece))
                controlPieces.Add(new AddedToken(id, piece, Special: true));
        var controlIds = controlPieces.Select(t => t.Id).ToHashSet();
        AddedTokens = [.. controlPieces, .. configAddedTokens.Where(t => !controlIds.Contains(t.Id))];
        _addedBeyondPieces = AddedTokens.Where(t => t.Id >= _pieces.Length).ToDictionary(t => t.Id);
        VocabSize = Math.Max(_pieces.Length, AddedTokens.Select(t => t.Id + 1).DefaultIfEmpty(0).Max());
    }

    /// <exception cref="InvalidDataException">The bytes are not a SentencePiece model ML.Tokenizers can run.</exception>
    public static SentencePieceModel Create(byte[] model, string fileLabel, IReadOnlyList<AddedToken> configAddedTokens)
    {
        SentencePieceTokenizer tokenizer;
        try
        {
            tokenizer = SentencePieceTokenizer.Create(new MemoryStream(model, writable: false), false, false);
        }
        // A malformed model surfaces as protobuf, argument or even null-reference exceptions from ML.Tokenizers.
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{fileLabel}: not a usable SentencePiece model ({e.Message})", e);
        }
        if (tokenizer.Vocabulary.Count == 0)
            throw new InvalidDataException($"{fileLabel}: the SentencePiece model has no pieces");
        if (tokenizer.Normalizer is not SentencePieceNormalizer whitespace)
            throw new InvalidDataException($"{fileLabel}: the SentencePiece model has no normalizer specification");
        return new SentencePieceModel(tokenizer, whitespace, configAddedTokens);
    }

    public int VocabSize { get; }
    public IReadOnlyList<AddedToken> AddedTokens { get; }
    public int? BosId => _tokenizer.BeginningOfSentenceId >= 0 ? _tokenizer.BeginningOfSentenceId : null;
    public int? EosId => _tokenizer.EndOfSentenceId >= 0 ? _tokenizer.EndOfSentenceId : null;

    /// <summary>SentencePiece LLMs (Llama 1/2, Mistral, TinyLlama) are trained with BOS before every text.</summary>
    public bool ExpectsBos => true;

    public int? IdOf(string token) =>
        _tokenizer.Vocabulary.TryGetValue(token, out int id) ? id : AddedTokens.FirstOrDefault(t => t.Content == token)?.Id;

    public string? TokenText(int id) =>
        id >= 0 && id < _pieces.Length ? _pieces[id] : _addedBeyondPieces.GetValueOrDefault(id)?.Content;

    public void Encode(string text, bool atTextStart, List<int> ids)
    {
        string normalized = NormalizeWhitespace(text);
        if (normalized.Length > 0)
            ids.AddRange(_tokenizer.EncodeToIds(normalized, addBeginningOfSentence: false, addEndOfSentence: false, considerPreTokenization: false, considerNormalization: false));
    }

    /// <summary>
    /// SentencePiece's own whitespace rules: with remove_extra_whitespaces, leading and trailing spaces go and runs
    /// of spaces become one; text that is then empty stays empty (no dummy prefix); only U+0020 counts as a space.
    /// </summary>
    private string NormalizeWhitespace(string text)
    {
        if (_whitespace.RemoveExtraWhiteSpaces)
            text = CollapseSpaces(text.Trim(' '));
        if (text.Length == 0) return text;
        char space = _whitespace.EscapeWhiteSpaces ? SpaceSymbol : ' ';
        if (_whitespace.EscapeWhiteSpaces) text = text.Replace(' ', SpaceSymbol);
        if (!_whitespace.AddDummyPrefix) return text;
        return _whitespace.TreatWhitespaceAsSuffix ? text + space : space + text;
    }

    private static string CollapseSpaces(string text)
    {
        if (!text.Contains("  ", StringComparison.Ordinal)) return text;
        var collapsed = new StringBuilder(text.Length);
        foreach (char c in text)
            if (c != ' ' || collapsed.Length == 0 || collapsed[^1] != ' ')
                collapsed.Append(c);
        return collapsed.ToString();
    }

    /// <summary>
    /// Pieces back to text as SentencePiece does: "▁" is a space, runs of byte pieces (&lt;0xE6&gt;...) are UTF-8,
    /// and the dummy-prefix space of the first piece goes. Decoded here rather than by ML.Tokenizers, which also
    /// drops the space of the first word after leading byte pieces ("\n", "▁return" gives "\nreturn"), so a
    /// stretch of ids would not decode to the same text alone as within the sequence (streaming relies on that).
    /// </summary>
    public string Decode(IReadOnlyList<int> ids)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        for (int i = 0; i < ids.Count; i++)
        {
            string? piece = TokenText(ids[i]);
            if (piece is null) continue;
            if (_tokenizer.ByteFallback && ids[i] < _pieces.Length && BytePiece.TryParse(piece, out byte value))
            {
                bytes.Add(value);
                continue;
            }
            AppendBytes();
            bool isPiece = ids[i] < _pieces.Length;
            if (isPiece) piece = piece.Replace(SpaceSymbol, ' ');
            if (i == 0 && isPiece && _whitespace.AddDummyPrefix && piece.StartsWith(' ')) piece = piece[1..];
            text.Append(piece);
        }
        AppendBytes();
        return text.ToString();

        void AppendBytes()
        {
            text.Append(Encoding.UTF8.GetString(bytes.ToArray()));
            bytes.Clear();
        }
    }
}
