using Microsoft.ML.Tokenizers;

namespace Engine.Runtime.Tokenization;

/// <summary>A model's tokenizer (SentencePiece tokenizer.model) with its BOS and stop ids.</summary>
public sealed class TextTokenizer
{
    private readonly SentencePieceTokenizer _tokenizer;

    private TextTokenizer(SentencePieceTokenizer tokenizer, IReadOnlySet<int> stopIds)
    {
        _tokenizer = tokenizer;
        StopIds = stopIds;
    }

    public int VocabSize => _tokenizer.Vocabulary.Count;
    public int? BosId => _tokenizer.BeginningOfSentenceId;
    public string? BosToken => _tokenizer.BeginningOfSentenceToken;
    public string? EosToken => _tokenizer.EndOfSentenceToken;
    public bool AddBosByDefault => true;
    public IReadOnlySet<int> StopIds { get; }
    public string? ChatTemplate => null;

    public static TextTokenizer? Load(string modelFolder)
    {
        string path = Path.Combine(modelFolder, "tokenizer.model");
        if (!File.Exists(path)) return null;
        using var stream = File.OpenRead(path);
        var tokenizer = LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false);
        return new TextTokenizer(tokenizer, new HashSet<int> { tokenizer.EndOfSentenceId });
    }

    public int[] Encode(string text, bool addBos, bool parseSpecial = false)
    {
        var ids = _tokenizer.EncodeToIds(text, addBeginningOfSentence: addBos, addEndOfSentence: false);
        return [.. ids];
    }

    public string Decode(IEnumerable<int> ids) => _tokenizer.Decode(ids, considerSpecialTokens: false);

    public StreamingDecoder CreateStreamingDecoder() => new(this);

    /// <summary>Decodes a growing token sequence and returns what each new token adds to the text.</summary>
    public sealed class StreamingDecoder(TextTokenizer tokenizer)
    {
        private readonly List<int> _ids = [];
        private string _emitted = "";

        public string Append(int id)
        {
            _ids.Add(id);
            string text = tokenizer.Decode(_ids);
            // Hold back a trailing replacement character: an incomplete UTF-8 sequence that later bytes complete.
            if (text.EndsWith('\uFFFD') || !text.StartsWith(_emitted, StringComparison.Ordinal)) return "";
            string piece = text[_emitted.Length..];
            _emitted = text;
            return piece;
        }

        public string Flush()
        {
            string text = tokenizer.Decode(_ids);
            string piece = text.StartsWith(_emitted, StringComparison.Ordinal) ? text[_emitted.Length..] : "";
            _emitted = text;
            return piece;
        }
    }
}
