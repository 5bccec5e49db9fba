using System.Text;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// A model's tokenizer: a SentencePiece tokenizer.model (through Microsoft.ML.Tokenizers) or a Hugging Face
/// tokenizer.json (byte-level BPE such as Llama 3, Qwen2/3, SmolLM2, or SentencePiece-style BPE), with the BOS, EOS,
/// stop ids, BOS default and chat template that tokenizer_config.json, generation_config.json and config.json add.
/// </summary>
public sealed class TextTokenizer
{
    /// <summary><see cref="FromBytes"/> kind for a SentencePiece model (the bytes of tokenizer.model).</summary>
    public const string SentencePieceKind = Engine.Formats.Epack.EpackTokenizer.SentencePieceKind;

    /// <summary><see cref="FromBytes"/> kind for a Hugging Face tokenizer.json.</summary>
    public const string TokenizerJsonKind = Engine.Formats.Epack.EpackTokenizer.TokenizerJsonKind;

    /// <summary>Stop tokens of the common chat formats, honoured whenever the vocabulary has them.</summary>
    private static readonly string[] ConventionalStopTokens = ["<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>"];

    private readonly ITokenModel _model;
    private readonly AddedTokenMatcher _addedTokens;
    private readonly HashSet<int> _skippedWhenDecoding;

    private TextTokenizer(ITokenModel model, TokenizerConfig config, ConfiguredTokenIds generation, ConfiguredTokenIds modelConfig)
    {
        _model = model;
        _addedTokens = new AddedTokenMatcher(model.AddedTokens);

        BosId = (config.BosToken is { } bosText ? model.IdOf(bosText) : null) ?? model.BosId ?? generation.BosId ?? modelConfig.BosId;
        BosToken = config.BosToken ?? (BosId is int bos ? model.TokenText(bos) : null);

        var stops = new HashSet<int>(generation.EosIds.Concat(modelConfig.EosIds));
        if (config.EosToken is { } eosText && model.IdOf(eosText) is int configuredEos) stops.Add(configuredEos);
        if (model.EosId is int modelEos) stops.Add(modelEos);
        foreach (string token in ConventionalStopTokens)
            if (model.IdOf(token) is int id)
                stops.Add(id);
        StopIds = stops;

        int? firstEos = model.EosId ?? generation.EosIds.Concat(modelConfig.EosIds).Cast<int?>().FirstOrDefault();
        EosToken = config.EosToken ?? (firstEos is int eos ? model.TokenText(eos) : null);
        AddBosByDefault = config.AddBosToken ?? model.ExpectsBos;
        ChatTemplate = config.ChatTemplate;

        _skippedWhenDecoding = [.. model.AddedTokens.Where(t => t.Special).Select(t => t.Id), .. stops];
        if (BosId is int skippedBos) _skippedWhenDecoding.Add(skippedBos);
    }

    /// <summary>One past the largest token id (added tokens included).</summary>
    public int VocabSize => _model.VocabSize;
    public int? BosId { get; }

    /// <summary>The text of BOS, for chat templates.</summary>
    public string? BosToken { get; }
    public string? EosToken { get; }

    /// <summary>
    /// Whether prompts get BOS: tokenizer_config.json's add_bos_token when it says; otherwise true for SentencePiece
    /// and for tokenizer.json files whose post-processor puts a special token first (Llama 3), else false (Qwen).
    /// </summary>
    public bool AddBosByDefault { get; }

    /// <summary>Ids that end generation: the configured EOS ids plus the chat formats' end tokens the vocabulary has.</summary>
    public IReadOnlySet<int> StopIds { get; }
    public string? ChatTemplate { get; }

    /// <summary>
    /// Loads the tokenizer of a model folder: tokenizer.json if present, else tokenizer.model; null when it has
    /// neither. tokenizer_config.json, generation_config.json, config.json and chat_template.jinja are read when present.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is malformed or asks for something unsupported; the message names it.</exception>
    public static TextTokenizer? Load(string modelFolder)
    {
        if (FindModelFile(modelFolder) is not var (kind, tokenizerPath)) return null;

        var config = ReadIfPresent(Path.Combine(modelFolder, "tokenizer_config.json"), TokenizerConfig.Parse) ?? TokenizerConfig.Empty;
        string templatePath = Path.Combine(modelFolder, "chat_template.jinja");
        if (config.ChatTemplate is null && File.Exists(templatePath))
            config = config with { ChatTemplate = File.ReadAllText(templatePath) };
        return Create(kind, File.ReadAllBytes(tokenizerPath), tokenizerPath, config,
            ReadIfPresent(Path.Combine(modelFolder, "generation_config.json"), ConfiguredTokenIds.Parse) ?? ConfiguredTokenIds.Empty,
            ReadIfPresent(Path.Combine(modelFolder, "config.json"), ConfiguredTokenIds.Parse) ?? ConfiguredTokenIds.Empty);

        static T? ReadIfPresent<T>(string path, Func<ReadOnlyMemory<byte>, string, T> parse) where T : class =>
            File.Exists(path) ? parse(File.ReadAllBytes(path), path) : null;
    }

    /// <summary>The tokenizer file of a model folder and its <see cref="FromBytes"/> kind: tokenizer.json if present, else tokenizer.model.</summary>
    public static (string Kind, string Path)? FindModelFile(string modelFolder)
    {
        string jsonPath = Path.Combine(modelFolder, "tokenizer.json"), sentencePiecePath = Path.Combine(modelFolder, "tokenizer.model");
        return File.Exists(jsonPath) ? (TokenizerJsonKind, jsonPath)
            : File.Exists(sentencePiecePath) ? (SentencePieceKind, sentencePiecePath)
            : null;
    }

    /// <summary>
    /// Builds a tokenizer from bytes embedded elsewhere (a packed model file): <paramref name="kind"/> is
    /// <see cref="SentencePieceKind"/> or <see cref="TokenizerJsonKind"/>; the JSON texts may be null, and
    /// <paramref name="chatTemplate"/> (a separate chat_template.jinja) is used when tokenizer_config.json has none.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown kind.</exception>
    /// <exception cref="InvalidDataException">Malformed or unsupported content; the message names the file it stands for.</exception>
    public static TextTokenizer FromBytes(string kind, byte[] tokenizerBytes, string? tokenizerConfigJson, string? generationConfigJson,
        string? modelConfigJson = null, string? chatTemplate = null)
    {
        string label = kind switch
        {
            SentencePieceKind => "tokenizer.model",
            TokenizerJsonKind => "tokenizer.json",
            _ => throw new ArgumentException($"unknown tokenizer kind '{kind}' (expected '{SentencePieceKind}' or '{TokenizerJsonKind}')", nameof(kind)),
        };
        var config = tokenizerConfigJson is null ? TokenizerConfig.Empty : TokenizerConfig.Parse(Encoding.UTF8.GetBytes(tokenizerConfigJson), "tokenizer_config.json");
        if (config.ChatTemplate is null && chatTemplate is not null) config = config with { ChatTemplate = chatTemplate };
        var generation = generationConfigJson is null ? ConfiguredTokenIds.Empty : ConfiguredTokenIds.Parse(Encoding.UTF8.GetBytes(generationConfigJson), "generation_config.json");
        var modelConfig = modelConfigJson is null ? ConfiguredTokenIds.Empty : ConfiguredTokenIds.Parse(Encoding.UTF8.GetBytes(modelConfigJson), "config.json");
        return Create(kind, tokenizerBytes, label, config, generation, modelConfig);
    }

    private static TextTokenizer Create(string kind, byte[] tokenizerBytes, string tokenizerLabel, TokenizerConfig config, ConfiguredTokenIds generation, ConfiguredTokenIds modelConfig)
    {
        ITokenModel model = kind == SentencePieceKind
            ? SentencePieceModel.Create(tokenizerBytes, tokenizerLabel, config.AddedTokens)
            : TokenizerJsonModel.Parse(tokenizerBytes, tokenizerLabel, config.AddedTokens);
        return new TextTokenizer(model, config, generation, modelConfig);
    }

    /// <summary>
    /// Encodes text. <paramref name="addBos"/> puts BOS first (when the tokenizer has one). With
    /// <paramref name="parseSpecial"/>, special tokens written in the text ("&lt;|im_start|&gt;", as a rendered chat
    /// template has them) become their ids; without it they are encoded as plain text. Non-special added tokens are
    /// always matched, as Hugging Face does.
    /// </summary>
    public int[] Encode(string text, bool addBos, bool parseSpecial = false)
    {
        var ids = new List<int>();
        if (addBos && BosId is int bos) ids.Add(bos);
        foreach (var segment in _addedTokens.Split(text, parseSpecial))
        {
            if (segment.Token is { } token) ids.Add(token.Id);
            else _model.Encode(segment.Text, segment.AtTextStart, ids);
        }
        return [.. ids];
    }

    /// <summary>The text of the ids, special tokens (BOS, stop tokens, special added tokens) left out.</summary>
    public string Decode(IEnumerable<int> ids) => _model.Decode([.. ids.Where(id => !_skippedWhenDecoding.Contains(id))]);

    /// <summary>One token's raw piece as the vocabulary stores it ("▁The", "ĠThe", "&lt;0x0A&gt;"), for inspection.</summary>
    /// <exception cref="ArgumentOutOfRangeException">No token has this id.</exception>
    public string TokenText(int id) =>
        _model.TokenText(id) ?? throw new ArgumentOutOfRangeException(nameof(id), id, $"no token has id {id} (vocabulary size {VocabSize})");

    /// <summary>A decoder for a growing sequence of generated ids; see <see cref="StreamingDecoder"/>.</summary>
    public StreamingDecoder CreateStreamingDecoder() => new(this);
}
