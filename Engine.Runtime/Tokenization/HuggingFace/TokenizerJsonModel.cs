using System.Text.Json;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// A Hugging Face tokenizer.json with a BPE model, run as the Rust tokenizers library runs it: per stretch of text
/// between added tokens, normalizer, then pre-tokenizer, then BPE per piece; decoding maps ids to pieces and runs
/// the decoder chain. Byte-level files (Llama 3, Qwen2/3, SmolLM2, GPT-2) and SentencePiece-style ones (Llama 2,
/// Mistral: Metaspace or Prepend/Replace, byte fallback) both fit this shape.
/// </summary>
internal sealed class TokenizerJsonModel : ITokenModel
{
    private readonly TextNormalizer? _normalizer;
    private readonly PreTokenizer? _preTokenizer;
    private readonly BpeModel _bpe;
    private readonly TokenDecoder? _decoder;
    private readonly string?[] _pieces;
    private readonly Dictionary<string, int> _addedIds;

    private TokenizerJsonModel(TextNormalizer? normalizer, PreTokenizer? preTokenizer, BpeModel bpe, TokenDecoder? decoder, IReadOnlyList<AddedToken> addedTokens, string? leadingSpecialToken)
    {
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _bpe = bpe;
        _decoder = decoder;
        AddedTokens = addedTokens;
        VocabSize = Math.Max(bpe.Vocabulary.Values.DefaultIfEmpty(-1).Max(), addedTokens.Select(t => t.Id).DefaultIfEmpty(-1).Max()) + 1;
        _pieces = new string?[VocabSize];
        foreach (var (piece, id) in bpe.Vocabulary) _pieces[id] = piece;
        foreach (var token in addedTokens) _pieces[token.Id] = token.Content;
        _addedIds = addedTokens.GroupBy(t => t.Content).ToDictionary(g => g.Key, g => g.First().Id, StringComparer.Ordinal);
        BosId = leadingSpecialToken is null ? null : IdOf(leadingSpecialToken);
    }

    public int VocabSize { get; }
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>
    /// The special token that the post-processor (TemplateProcessing, alone or in a Sequence) puts before every
    /// encoded text: Llama 3's &lt;|begin_of_text|&gt;. Such a file expects BOS by default.
    /// </summary>
    public int? BosId { get; }
    public int? EosId => null;
    public bool ExpectsBos => BosId is not null;

    /// <exception cref="InvalidDataException">Malformed JSON, a model type other than BPE, or an unsupported pipeline step.</exception>
    public static TokenizerJsonModel Parse(ReadOnlyMemory<byte> json, string fileLabel, IReadOnlyList<AddedToken> configAddedTokens)
    {
        using var file = JsonFile.Parse(json, fileLabel);
        var root = file.Root;
        var model = file.RequiredMember(root, "model", JsonValueKind.Object);
        // Files from older tokenizers versions may leave out the type of a BPE model.
        string type = file.OptionalString(model, "type") ?? (JsonFile.Member(model, "merges") is null ? "unknown" : "BPE");
        if (type != "BPE")
            throw file.Error($"tokenizer model type '{type}' is not supported (only BPE: byte-level files such as Llama 3 and Qwen, and SentencePiece-style ones)");

        var fileTokens = JsonFile.Member(root, "added_tokens") is { } list ? ParseAddedTokens(list, file) : [];
        var fileIds = fileTokens.Select(t => t.Id).ToHashSet();
        IReadOnlyList<AddedToken> addedTokens = [.. fileTokens, .. configAddedTokens.Where(t => !fileIds.Contains(t.Id))];

        return new TokenizerJsonModel(
            TextNormalizer.FromJson(JsonFile.Member(root, "normalizer"), file),
            PreTokenizer.FromJson(JsonFile.Member(root, "pre_tokenizer"), file),
            BpeModel.FromJson(model, file),
            TokenDecoder.FromJson(JsonFile.Member(root, "decoder"), file),
            addedTokens,
            FindLeadingSpecialToken(JsonFile.Member(root, "post_processor"), file));
    }

    private static List<AddedToken> ParseAddedTokens(JsonElement list, JsonFile file)
    {
        if (list.ValueKind != JsonValueKind.Array) throw file.Error($"'added_tokens' should be an array, found {list.ValueKind}");
        var tokens = new List<AddedToken>();
        foreach (var token in list.EnumerateArray())
        {
            int id = file.TokenId(file.RequiredMember(token, "id", JsonValueKind.Number), "added_tokens[].id");
            tokens.Add(new AddedToken(id, file.RequiredString(token, "content"), file.OptionalBool(token, "special") ?? false,
                file.OptionalBool(token, "lstrip") ?? false, file.OptionalBool(token, "rstrip") ?? false));
        }
        return tokens;
    }

    /// <summary>The SpecialToken a TemplateProcessing "single" template starts with, if any.</summary>
    private static string? FindLeadingSpecialToken(JsonElement? postProcessor, JsonFile file)
    {
        if (postProcessor is not { } processor) return null;
        switch (file.OptionalString(processor, "type"))
        {
            case "Sequence":
                return JsonFile.Member(processor, "processors") is { ValueKind: JsonValueKind.Array } steps
                    ? steps.EnumerateArray().Select(step => FindLeadingSpecialToken(step, file)).FirstOrDefault(token => token is not null)
                    : null;
            case "TemplateProcessing":
                if (JsonFile.Member(processor, "single") is not { ValueKind: JsonValueKind.Array } single || single.GetArrayLength() == 0) return null;
                return JsonFile.Member(single[0], "SpecialToken") is { } special ? file.RequiredString(special, "id") : null;
            default:
                return null;
        }
    }

    public int? IdOf(string token) =>
        _addedIds.TryGetValue(token, out int added) ? added : _bpe.Vocabulary.TryGetValue(token, out int id) ? id : null;

    public string? TokenText(int id) => id >= 0 && id < _pieces.Length ? _pieces[id] : null;

    public void Encode(string text, bool atTextStart, List<int> ids)
    {
        string normalized = _normalizer?.Normalize(text) ?? text;
        if (normalized.Length == 0) return;
        foreach (string piece in _preTokenizer?.Split(normalized, atTextStart) ?? [normalized])
            _bpe.Encode(piece, ids);
    }

    public string Decode(IReadOnlyList<int> ids)
    {
        var pieces = new List<string>(ids.Count);
        foreach (int id in ids)
            if (TokenText(id) is { } piece)
                pieces.Add(piece);
        // Without a decoder, Hugging Face joins the pieces with spaces.
        return _decoder is null ? string.Join(' ', pieces) : string.Concat(_decoder.Decode(pieces));
    }
}
