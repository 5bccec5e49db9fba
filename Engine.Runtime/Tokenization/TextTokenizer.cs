using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// A model's tokenizer (SentencePiece tokenizer.model) with its BOS and stop ids, and the chat template and
/// BOS setting of tokenizer_config.json when the folder has one.
/// </summary>
public sealed class TextTokenizer
{
    private readonly SentencePieceTokenizer _tokenizer;

    private TextTokenizer(SentencePieceTokenizer tokenizer, IReadOnlySet<int> stopIds, string? chatTemplate, bool addBos)
    {
        _tokenizer = tokenizer;
        StopIds = stopIds;
        ChatTemplate = chatTemplate;
        AddBosByDefault = addBos;
    }

    public int VocabSize => _tokenizer.Vocabulary.Count;
    public int? BosId => _tokenizer.BeginningOfSentenceId;
    public string? BosToken => _tokenizer.BeginningOfSentenceToken;
    public string? EosToken => _tokenizer.EndOfSentenceToken;
    public bool AddBosByDefault { get; }
    public IReadOnlySet<int> StopIds { get; }
    public string? ChatTemplate { get; }

    public static TextTokenizer? Load(string modelFolder)
    {
        string path = Path.Combine(modelFolder, "tokenizer.model");
        if (!File.Exists(path)) return null;
        using var stream = File.OpenRead(path);
        var tokenizer = LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false);
        var stops = new HashSet<int> { tokenizer.EndOfSentenceId };
        string? template = null;
        bool addBos = true;
        string configPath = Path.Combine(modelFolder, "tokenizer_config.json");
        if (File.Exists(configPath))
        {
            try
            {
                using var config = JsonDocument.Parse(File.ReadAllBytes(configPath));
                var root = config.RootElement;
                template = root.TryGetProperty("chat_template", out var t) ? TemplateText(t) : null;
                if (root.TryGetProperty("add_bos_token", out var bos) && bos.ValueKind is JsonValueKind.True or JsonValueKind.False)
                    addBos = bos.GetBoolean();
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{configPath}: not valid JSON ({e.Message})");
            }
        }
        return new TextTokenizer(tokenizer, stops, template, addBos);
    }

    /// <summary>A chat_template is a string, or a list of named templates of which "default" (else the first) is used.</summary>
    private static string? TemplateText(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => element.GetString(),
        JsonValueKind.Array => element.EnumerateArray()
            .Where(e => e.ValueKind == JsonValueKind.Object && e.TryGetProperty("template", out _))
            .OrderBy(e => e.TryGetProperty("name", out var n) && n.GetString() == "default" ? 0 : 1)
            .Select(e => e.GetProperty("template").GetString())
            .FirstOrDefault(),
        _ => null,
    };

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
