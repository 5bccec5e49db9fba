namespace Engine.Formats.Epack;

/// <summary>
/// What an .epack file says about its model besides the tensors: the architecture, the Hugging Face config texts
/// (so <see cref="HfConfigReader"/> rebuilds the <see cref="ModelConfig"/> exactly as for the source folder), the RoPE
/// layout (llama2.c sources are interleaved, which config.json cannot say), the embedded tokenizer, and how and from
/// what the file was made.
/// </summary>
public sealed record EpackMetadata
{
    /// <summary>The Hugging Face <c>model_type</c>; equal to the config's.</summary>
    public required string Architecture { get; init; }

    /// <summary>The text of config.json (synthesized for sources that have none, such as llama2.c).</summary>
    public required string ConfigJson { get; init; }

    /// <summary>The text of generation_config.json, when the source has one.</summary>
    public string? GenerationConfigJson { get; init; }

    public RopeLayout RopeLayout { get; init; } = RopeLayout.RotateHalf;

    /// <summary>The tokenizer, when the source has one.</summary>
    public EpackTokenizer? Tokenizer { get; init; }

    /// <summary>How the tensors were quantized, when a quantizer wrote the file.</summary>
    public EpackRecipe? Recipe { get; init; }

    public EpackProvenance? Provenance { get; init; }
}

/// <summary>
/// A tokenizer embedded in an .epack file: the bytes of tokenizer.model (<see cref="SentencePieceKind"/>) or
/// tokenizer.json (<see cref="TokenizerJsonKind"/>), tokenizer_config.json's text (BOS/EOS, added tokens and the chat
/// template) and, when the template was a separate chat_template.jinja, that template.
/// </summary>
public sealed record EpackTokenizer(string Kind, byte[] Data, string? TokenizerConfigJson, string? ChatTemplate)
{
    public const string SentencePieceKind = "sentencepiece";
    public const string TokenizerJsonKind = "tokenizer.json";

    public static IReadOnlyList<string> Kinds { get; } = [SentencePieceKind, TokenizerJsonKind];
}

/// <summary>
/// The quantization recipe as asked for: the target format and its parameters, the method, and the per-tensor
/// overrides (<c>PATTERN</c> keeps a tensor's source format, <c>PATTERN=FORMAT</c> picks another). What each tensor
/// finally got is in the tensor directory.
/// </summary>
public sealed record EpackRecipe(string Format, FormatParameters Parameters, string Method, IReadOnlyList<string> Overrides);

/// <summary>Where the file came from: the source path, the files read with their sizes, the tool, when, and how it was run.</summary>
public sealed record EpackProvenance(
    string Source,
    IReadOnlyList<EpackSourceFile> SourceFiles,
    string ToolVersion,
    DateTimeOffset CreatedUtc,
    string CommandLine);

public sealed record EpackSourceFile(string Path, long Bytes);
