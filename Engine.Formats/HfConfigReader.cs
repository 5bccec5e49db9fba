using System.Text;
using System.Text.Json;

namespace Engine.Formats;

/// <summary>
/// Reads a Hugging Face model folder's <c>config.json</c> (and <c>generation_config.json</c> when present) into a
/// <see cref="ModelConfig"/>. Multimodal configs that keep the language model's fields in <c>text_config</c>
/// (LLaVA and friends) are read from there when the top level lacks a field; <c>model_type</c> is always the top
/// level's. Fields a non-attention architecture does not have (heads for Mamba or RWKV) read as 0. BlinkDL's RWKV
/// configs (no <c>model_type</c>; <c>architecture</c>, <c>n_embd</c>, <c>n_layer</c>, <c>dim_ffn</c>, <c>n_head</c>,
/// <c>head_size</c>) are read with those names; their other fields stay in <see cref="ModelConfig.Raw"/>.
/// </summary>
public static class HfConfigReader
{
    public const string ConfigFileName = "config.json";
    public const string GenerationConfigFileName = "generation_config.json";

    private static readonly JsonDocumentOptions Options = new() { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip };

    public static ModelConfig Read(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        string configPath = Path.Combine(folder, ConfigFileName);
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"{configPath} does not exist (a Hugging Face model folder needs one)", configPath);

        using var config = Parse(File.ReadAllBytes(configPath), configPath);
        string generationPath = Path.Combine(folder, GenerationConfigFileName);
        using var generation = File.Exists(generationPath) ? Parse(File.ReadAllBytes(generationPath), generationPath) : null;
        return Interpret(config, generation, configPath, generationPath);
    }

    /// <summary>
    /// Reads config.json and generation_config.json texts kept elsewhere (a packed model file embeds them);
    /// <paramref name="source"/> prefixes the file names in error messages.
    /// </summary>
    public static ModelConfig FromJson(string configJson, string? generationConfigJson, string source)
    {
        ArgumentNullException.ThrowIfNull(configJson);
        string configLabel = $"{source}: {ConfigFileName}", generationLabel = $"{source}: {GenerationConfigFileName}";
        using var config = Parse(Encoding.UTF8.GetBytes(configJson), configLabel);
        using var generation = generationConfigJson is null ? null : Parse(Encoding.UTF8.GetBytes(generationConfigJson), generationLabel);
        return Interpret(config, generation, configLabel, generationLabel);
    }

    private static ModelConfig Interpret(JsonDocument config, JsonDocument? generation, string configPath, string generationPath)
    {
        var root = config.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{configPath}: must be a JSON object, found {root.ValueKind}");
        JsonElement? textConfig = root.TryGetProperty("text_config", out var text) && text.ValueKind == JsonValueKind.Object ? text : null;
        JsonElement? generationRoot = generation?.RootElement.ValueKind == JsonValueKind.Object ? generation.RootElement : null;

        JsonElement? Find(string name)
        {
            if (root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null)
                return value;
            if (textConfig is { } inner && inner.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null)
                return value;
            return null;
        }

        int? Int(string name, JsonElement? element, string file)
        {
            if (element is not { } value)
                return null;
            if (value.ValueKind == JsonValueKind.Number)
            {
                if (value.TryGetInt32(out int whole))
                    return whole;
                if (value.TryGetDouble(out double real) && real == Math.Floor(real) && real >= int.MinValue && real <= int.MaxValue)
                    return (int)real;
            }
            throw new InvalidDataException($"{file}: field '{name}' must be an integer, found {value.GetRawText()}");
        }

        int? OptionalInt(string name) => Int(name, Find(name), configPath);

        int RequiredPositive(string name)
        {
            int value = OptionalInt(name) ?? throw new InvalidDataException($"{configPath}: missing required field '{name}'");
            if (value <= 0)
                throw new InvalidDataException($"{configPath}: field '{name}' must be positive, found {value}");
            return value;
        }

        int NonNegative(string name, int? value)
        {
            if (value < 0)
                throw new InvalidDataException($"{configPath}: field '{name}' must not be negative, found {value}");
            return value ?? 0;
        }

        double? Double(string name, JsonElement? element)
        {
            if (element is not { } value)
                return null;
            if (value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double number) && double.IsFinite(number))
                return number;
            throw new InvalidDataException($"{configPath}: field '{name}' must be a finite number, found {value.GetRawText()}");
        }

        // BlinkDL's RWKV configs have no model_type but an "architecture" (rwkv6, rwkv7) and GPT-style field names.
        bool blink = !root.TryGetProperty("model_type", out var modelType) && root.TryGetProperty("architecture", out modelType);
        string typeField = blink ? "architecture" : "model_type";
        if (modelType.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
            throw new InvalidDataException($"{configPath}: missing required field 'model_type'");
        if (modelType.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(modelType.GetString()))
            throw new InvalidDataException($"{configPath}: field '{typeField}' must be a non-empty string, found {modelType.GetRawText()}");

        int vocab = RequiredPositive("vocab_size");
        int hidden = RequiredPositive(blink ? "n_embd" : "hidden_size");
        int layers = RequiredPositive(blink ? "n_layer" : "num_hidden_layers");
        string ffnField = blink ? "dim_ffn" : "intermediate_size", headsField = blink ? "n_head" : "num_attention_heads";
        int intermediate = NonNegative(ffnField, OptionalInt(ffnField));
        int heads = NonNegative(headsField, OptionalInt(headsField));
        int kvHeads = NonNegative("num_key_value_heads", OptionalInt("num_key_value_heads") ?? heads);
        if (heads > 0 && (kvHeads == 0 || heads % kvHeads != 0))
            throw new InvalidDataException($"{configPath}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
        string headDimField = blink ? "head_size" : "head_dim";
        int headDim = NonNegative(headDimField, OptionalInt(headDimField) ?? (heads > 0 ? hidden / heads : 0));

        double eps = Double("rms_norm_eps", Find("rms_norm_eps"))
            ?? Double("layer_norm_epsilon", Find("layer_norm_epsilon"))
            ?? Double("layer_norm_eps", Find("layer_norm_eps"))
            ?? 1e-5;
        if (eps <= 0)
            throw new InvalidDataException($"{configPath}: the norm epsilon must be positive, found {eps}");

        JsonElement? ropeParameters = Find("rope_parameters");
        JsonElement? nestedTheta = ropeParameters is { ValueKind: JsonValueKind.Object } parameters
            && parameters.TryGetProperty("rope_theta", out var theta) && theta.ValueKind != JsonValueKind.Null ? theta : null;
        double ropeTheta = Double("rope_theta", Find("rope_theta")) ?? Double("rope_parameters.rope_theta", nestedTheta) ?? 10000.0;
        if (ropeTheta <= 0)
            throw new InvalidDataException($"{configPath}: rope_theta must be positive, found {ropeTheta}");

        bool tied = false;
        if (Find("tie_word_embeddings") is { } tie)
        {
            tied = tie.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new InvalidDataException($"{configPath}: field 'tie_word_embeddings' must be true or false, found {tie.GetRawText()}"),
            };
        }

        int? maxPositions = OptionalInt("max_position_embeddings") ?? OptionalInt("context_length") ?? OptionalInt("n_positions");
        if (maxPositions <= 0)
            throw new InvalidDataException($"{configPath}: max_position_embeddings must be positive, found {maxPositions}");

        JsonElement? GenerationField(string name) =>
            generationRoot is { } g && g.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

        int? bos = GenerationField("bos_token_id") is { } generationBos
            ? Int("bos_token_id", generationBos, generationPath)
            : OptionalInt("bos_token_id");
        int[] eos = GenerationField("eos_token_id") is { } generationEos
            ? TokenIds(generationEos, generationPath)
            : Find("eos_token_id") is { } configEos ? TokenIds(configEos, configPath) : [];

        int[] windows = SlidingWindows(root, textConfig, modelType.GetString()!, layers, Find, OptionalInt, configPath);

        var result = new ModelConfig
        {
            Architecture = modelType.GetString()!,
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = intermediate,
            LayerCount = layers,
            HeadCount = heads,
            KvHeadCount = kvHeads,
            HeadDim = headDim,
            RmsNormEps = eps,
            RopeTheta = ropeTheta,
            RopeLayout = RopeLayout.RotateHalf,
            TieWordEmbeddings = tied,
            BosTokenId = bos,
            EosTokenIds = eos,
            SlidingWindows = windows,
            Raw = root.Clone(),
        };
        return maxPositions is int positions ? result with { MaxPositions = positions } : result;
    }

    /// <summary>
    /// The sliding window of every layer (empty when none has one), as transformers derives it:
    /// Mistral and Mixtral put <c>sliding_window</c> on every layer (Mistral's default when the field is absent is 4096,
    /// Mixtral's none); Qwen2, Qwen2-MoE, Qwen3 (and their MoE and VL variants) have a window only with
    /// <c>use_sliding_window</c> (4096 when <c>sliding_window</c> is absent), on the layers <c>layer_types</c> marks
    /// <c>sliding_attention</c>, else on layers i &gt;= <c>max_window_layers</c> (28 when absent); any other model uses
    /// <c>sliding_window</c> on the layers <c>layer_types</c> marks sliding, and no window without <c>layer_types</c>.
    /// The architecture is the text model's (<c>text_config.model_type</c> for multimodal configs) when it has one.
    /// </summary>
    private static int[] SlidingWindows(JsonElement root, JsonElement? textConfig, string modelType, int layers,
        Func<string, JsonElement?> find, Func<string, int?> optionalInt, string configPath)
    {
        string family = textConfig is { } text && text.TryGetProperty("model_type", out var textType) && textType.ValueKind == JsonValueKind.String
            ? textType.GetString()!
            : modelType;
        bool present = root.TryGetProperty("sliding_window", out _)
            || (textConfig is { } inner && inner.TryGetProperty("sliding_window", out _));
        int? window = optionalInt("sliding_window");
        if (window <= 0)
            throw new InvalidDataException($"{configPath}: sliding_window must be a positive integer or null, found {window}");

        bool qwen = family.StartsWith("qwen2", StringComparison.Ordinal) || family.StartsWith("qwen3", StringComparison.Ordinal);
        if (qwen)
        {
            bool use = find("use_sliding_window") is { } flag && flag.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new InvalidDataException($"{configPath}: field 'use_sliding_window' must be true or false, found {flag.GetRawText()}"),
            };
            window = use ? (present ? window : 4096) : null;
        }
        else if (family == "mistral")
        {
            window = present ? window : 4096;
        }

        var types = LayerTypes(find("layer_types"), layers, configPath);
        int[] result = new int[layers];
        for (int i = 0; i < layers; i++)
        {
            bool sliding = family is "mistral" or "mixtral" ? true
                : types is not null ? types[i]
                : qwen && i >= (optionalInt("max_window_layers") ?? 28);
            result[i] = sliding ? window ?? 0 : 0;
        }
        return result.Any(w => w > 0) ? result : [];
    }

    /// <summary><c>layer_types</c>: per layer, whether it is <c>sliding_attention</c> (else <c>full_attention</c>); null when absent.</summary>
    private static bool[]? LayerTypes(JsonElement? element, int layers, string configPath)
    {
        if (element is not { } list)
            return null;
        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() != layers)
            throw new InvalidDataException($"{configPath}: layer_types must list one type per layer ({layers}), found {list.GetRawText()}");
        var sliding = new bool[layers];
        int i = 0;
        foreach (var item in list.EnumerateArray())
        {
            sliding[i++] = item.ValueKind == JsonValueKind.String ? item.GetString() switch
            {
                "sliding_attention" => true,
                "full_attention" => false,
                var other => throw new InvalidDataException($"{configPath}: layer type '{other}' is not supported (full_attention or sliding_attention)"),
            } : throw new InvalidDataException($"{configPath}: layer_types must hold strings, found {item.GetRawText()}");
        }
        return sliding;
    }

    private static int[] TokenIds(JsonElement element, string file)
    {
        static bool TryId(JsonElement value, out int id)
        {
            id = 0;
            return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out id) && id >= 0;
        }

        if (TryId(element, out int single))
            return [single];
        if (element.ValueKind == JsonValueKind.Array)
        {
            var ids = new int[element.GetArrayLength()];
            int i = 0;
            foreach (var value in element.EnumerateArray())
            {
                if (!TryId(value, out ids[i++]))
                    throw new InvalidDataException($"{file}: field 'eos_token_id' must hold non-negative integers, found {element.GetRawText()}");
            }
            return ids;
        }
        throw new InvalidDataException($"{file}: field 'eos_token_id' must be an integer or a list of integers, found {element.GetRawText()}");
    }

    /// <summary>
    /// Parses a JSON file's bytes; Python's <c>json.dump</c> writes bare <c>NaN</c> / <c>Infinity</c>, which are not JSON, so a file
    /// that fails to parse is retried with those tokens written the transformers-5 way (<c>{"__float__": "Infinity"}</c>).
    /// </summary>
    private static JsonDocument Parse(byte[] bytes, string path)
    {
        ReadOnlyMemory<byte> content = bytes.AsSpan().StartsWith("\uFEFF"u8) ? bytes.AsMemory(3) : bytes;
        try
        {
            return JsonDocument.Parse(content, Options);
        }
        catch (JsonException first)
        {
            if (QuoteNonFiniteNumbers(Encoding.UTF8.GetString(content.Span)) is { } repaired)
            {
                try
                {
                    return JsonDocument.Parse(repaired, Options);
                }
                catch (JsonException)
                {
                }
            }
            throw new InvalidDataException($"{path}: not valid JSON: {first.Message}", first);
        }
    }

    /// <summary>The text with bare NaN, Infinity and -Infinity outside strings replaced, or null when it has none.</summary>
    private static string? QuoteNonFiniteNumbers(string text)
    {
        var builder = new StringBuilder(text.Length + 32);
        bool inString = false, changed = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (inString)
            {
                builder.Append(c);
                if (c == '\\' && i + 1 < text.Length)
                    builder.Append(text[++i]);
                else if (c == '"')
                    inString = false;
                continue;
            }
            if (c == '"')
            {
                inString = true;
                builder.Append(c);
                continue;
            }
            string? token = null;
            foreach (var candidate in (ReadOnlySpan<string>)["-Infinity", "Infinity", "NaN"])
            {
                if (string.CompareOrdinal(text, i, candidate, 0, candidate.Length) == 0)
                {
                    token = candidate;
                    break;
                }
            }
            if (token is null)
            {
                builder.Append(c);
                continue;
            }
            builder.Append("{\"__float__\": \"").Append(token).Append("\"}");
            i += token.Length - 1;
            changed = true;
        }
        return changed ? builder.ToString() : null;
    }
}
