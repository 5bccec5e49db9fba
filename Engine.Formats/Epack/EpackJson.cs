using System.Globalization;
using System.Text.Json;

namespace Engine.Formats.Epack;

/// <summary>
/// The two JSON blocks of an .epack file, written and read with every field checked (a reader error names the file,
/// the block and the field).
/// <para>Metadata: <c>{"architecture", "rope_layout": "rotate_half"|"interleaved", "config": config.json text,
/// "generation_config"?: text, "tokenizer"?: {"kind", "data": base64, "tokenizer_config"?: text, "chat_template"?: text},
/// "recipe"?: {"format", "parameters", "method", "overrides": [text]}, "provenance"?: {"source", "source_files":
/// [{"path", "bytes"}], "tool_version", "created_utc", "command_line"}}</c>; other members are ignored.</para>
/// <para>Directory: <c>[{"name", "shape": [dims], "format": id, "parameters": {"group_size"?, "bits"?, "planes"?,
/// "rank"?, "reference"?}, "offset", "length", "xxh3": 16 hex digits}]</c>; unknown members are refused, since a
/// parameter this reader ignored would decode the tensor wrongly.</para>
/// </summary>
internal static class EpackJson
{
    /// <summary>More dimensions than any model tensor has; refusing them bounds the work per entry.</summary>
    public const int MaxDimensions = 8;

    private const string RotateHalf = "rotate_half", Interleaved = "interleaved";

    private static readonly string[] DirectoryMembers = ["name", "shape", "format", "parameters", "offset", "length", "xxh3"];

    public static byte[] WriteMetadata(EpackMetadata metadata) => Write(writer =>
    {
        writer.WriteStartObject();
        writer.WriteString("architecture", metadata.Architecture);
        writer.WriteString("rope_layout", metadata.RopeLayout == RopeLayout.Interleaved ? Interleaved : RotateHalf);
        writer.WriteString("config", metadata.ConfigJson);
        if (metadata.GenerationConfigJson is { } generation) writer.WriteString("generation_config", generation);
        if (metadata.Tokenizer is { } tokenizer)
        {
            writer.WriteStartObject("tokenizer");
            writer.WriteString("kind", tokenizer.Kind);
            writer.WriteBase64String("data", tokenizer.Data);
            if (tokenizer.TokenizerConfigJson is { } config) writer.WriteString("tokenizer_config", config);
            if (tokenizer.ChatTemplate is { } template) writer.WriteString("chat_template", template);
            writer.WriteEndObject();
        }
        if (metadata.Recipe is { } recipe)
        {
            writer.WriteStartObject("recipe");
            writer.WriteString("format", recipe.Format);
            writer.WritePropertyName("parameters");
            WriteParameters(writer, recipe.Parameters);
            writer.WriteString("method", recipe.Method);
            writer.WriteStartArray("overrides");
            foreach (string entry in recipe.Overrides) writer.WriteStringValue(entry);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        if (metadata.Provenance is { } provenance)
        {
            writer.WriteStartObject("provenance");
            writer.WriteString("source", provenance.Source);
            writer.WriteStartArray("source_files");
            foreach (var file in provenance.SourceFiles)
            {
                writer.WriteStartObject();
                writer.WriteString("path", file.Path);
                writer.WriteNumber("bytes", file.Bytes);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteString("tool_version", provenance.ToolVersion);
            writer.WriteString("created_utc", provenance.CreatedUtc.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
            writer.WriteString("command_line", provenance.CommandLine);
            writer.WriteEndObject();
        }
        writer.WriteEndObject();
    });

    public static byte[] WriteDirectory(IEnumerable<EpackTensorEntry> entries) => Write(writer =>
    {
        writer.WriteStartArray();
        foreach (var entry in entries)
        {
            writer.WriteStartObject();
            writer.WriteString("name", entry.Info.Name);
            writer.WriteStartArray("shape");
            foreach (long dimension in entry.Info.Shape) writer.WriteNumberValue(dimension);
            writer.WriteEndArray();
            writer.WriteNumber("format", (int)entry.Info.Type);
            writer.WritePropertyName("parameters");
            WriteParameters(writer, entry.Info.Parameters);
            writer.WriteNumber("offset", entry.Offset);
            writer.WriteNumber("length", entry.Length);
            writer.WriteString("xxh3", entry.Checksum.ToString("x16", CultureInfo.InvariantCulture));
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
    });

    public static EpackMetadata ReadMetadata(byte[] block, string path)
    {
        var read = new Reader(path, "metadata");
        using var document = read.Parse(block);
        var root = read.Object(document.RootElement, "the block");
        string layout = read.String(root, "rope_layout");
        var metadata = new EpackMetadata
        {
            Architecture = read.String(root, "architecture"),
            RopeLayout = layout switch
            {
                RotateHalf => RopeLayout.RotateHalf,
                Interleaved => RopeLayout.Interleaved,
                _ => throw read.Error($"'rope_layout' must be '{RotateHalf}' or '{Interleaved}', found '{layout}'"),
            },
            ConfigJson = read.String(root, "config"),
            GenerationConfigJson = read.OptionalString(root, "generation_config"),
        };
        if (Reader.Member(root, "tokenizer") is { } tokenizerElement)
        {
            var tokenizer = read.Object(tokenizerElement, "'tokenizer'");
            string kind = read.String(tokenizer, "kind");
            if (!EpackTokenizer.Kinds.Contains(kind))
                throw read.Error($"tokenizer kind '{kind}' is unknown (expected {string.Join(" or ", EpackTokenizer.Kinds)})");
            var data = Reader.Member(tokenizer, "data");
            if (data is not { ValueKind: JsonValueKind.String } || !data.Value.TryGetBytesFromBase64(out byte[]? bytes) || bytes.Length == 0)
                throw read.Error("tokenizer 'data' must be non-empty base64 text");
            metadata = metadata with
            {
                Tokenizer = new EpackTokenizer(kind, bytes, read.OptionalString(tokenizer, "tokenizer_config"), read.OptionalString(tokenizer, "chat_template")),
            };
        }
        if (Reader.Member(root, "recipe") is { } recipeElement)
        {
            var recipe = read.Object(recipeElement, "'recipe'");
            var overrides = read.Array(recipe, "overrides");
            metadata = metadata with
            {
                Recipe = new EpackRecipe(
                    read.String(recipe, "format"),
                    ReadParameters(read, read.Required(recipe, "parameters"), "recipe"),
                    read.String(recipe, "method"),
                    [.. overrides.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : throw read.Error("recipe 'overrides' must hold strings"))]),
            };
        }
        if (Reader.Member(root, "provenance") is { } provenanceElement)
        {
            var provenance = read.Object(provenanceElement, "'provenance'");
            var files = read.Array(provenance, "source_files").EnumerateArray().Select(file =>
            {
                var entry = read.Object(file, "a provenance source file");
                return new EpackSourceFile(read.String(entry, "path"), read.Integer(entry, "bytes", "source file", 0, long.MaxValue));
            }).ToArray();
            string created = read.String(provenance, "created_utc");
            if (!DateTimeOffset.TryParse(created, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var createdUtc))
                throw read.Error($"provenance 'created_utc' is not a date: '{created}'");
            metadata = metadata with
            {
                Provenance = new EpackProvenance(read.String(provenance, "source"), files, read.String(provenance, "tool_version"), createdUtc,
                    read.String(provenance, "command_line")),
            };
        }
        return metadata;
    }

    /// <summary>
    /// The directory's entries, each checked on its own: a unique non-empty name, 1 to <see cref="MaxDimensions"/>
    /// positive dimensions whose product does not overflow, a known format id with parameters the format accepts, and a
    /// length equal to what the format's layout needs. Where the bytes lie is checked by the caller, who knows the file.
    /// </summary>
    public static List<EpackTensorEntry> ReadDirectory(byte[] block, string path)
    {
        var read = new Reader(path, "tensor directory");
        using var document = read.Parse(block);
        if (document.RootElement.ValueKind != JsonValueKind.Array)
            throw read.Error($"must be a JSON array, found {document.RootElement.ValueKind}");
        var entries = new List<EpackTensorEntry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        int index = 0;
        foreach (var element in document.RootElement.EnumerateArray())
        {
            var entry = read.Object(element, $"entry {index}");
            string name = read.String(entry, "name", $"entry {index}");
            if (name.Length == 0) throw read.Error($"entry {index} has an empty name");
            if (!names.Add(name)) throw read.Error($"tensor '{name}' appears twice");
            string context = $"tensor '{name}'";
            foreach (var member in entry.EnumerateObject())
            {
                if (!DirectoryMembers.Contains(member.Name))
                    throw read.Error($"{context} has an unknown member '{member.Name}' (written by a newer engine?)");
            }

            var shapeElement = read.Array(entry, "shape", context);
            int rank = shapeElement.GetArrayLength();
            if (rank is 0 or > MaxDimensions)
                throw read.Error($"{context} has {rank} dimensions (expected 1 to {MaxDimensions})");
            var shape = new long[rank];
            long elements = 1;
            int d = 0;
            foreach (var dimension in shapeElement.EnumerateArray())
            {
                if (dimension.ValueKind != JsonValueKind.Number || !dimension.TryGetInt64(out long size) || size <= 0 || size > int.MaxValue)
                    throw read.Error($"{context} shape {shapeElement.GetRawText()} has a dimension that is not an integer from 1 to {int.MaxValue}");
                shape[d++] = size;
                if (!SizeMath.TryMultiply(elements, size, out elements))
                    throw read.Error($"{context} shape {shapeElement.GetRawText()} has too many elements (overflow)");
            }

            long id = read.Integer(entry, "format", context, 0, ushort.MaxValue);
            if (!WeightTypes.TryGet((WeightType)id, out var format))
                throw read.Error($"{context} has unknown format id {id} (known: {string.Join(", ", WeightTypes.All.Select(f => $"{(int)f.Type} {f.Name}"))})");
            var parameters = ReadParameters(read, read.Required(entry, "parameters", context), context);
            var info = new TensorInfo(name, shape, format.Type, parameters);
            long expected;
            try
            {
                expected = format.Layout(info.Rows, info.Columns, parameters).TotalBytes;
            }
            catch (InvalidDataException e)
            {
                throw read.Error($"{context} ({format.Name}, shape {info.ShapeText}): {e.Message}");
            }
            long offset = read.Integer(entry, "offset", context, 0, long.MaxValue);
            long length = read.Integer(entry, "length", context, 0, long.MaxValue);
            if (expected < 0)
                throw read.Error($"{context} shape {info.ShapeText} of {format.Name} has a byte size that overflows");
            if (length != expected)
                throw read.Error($"{context} is {length} bytes, but shape {info.ShapeText} of {format.Name} {parameters} needs {expected}");
            string hash = read.String(entry, "xxh3", context);
            if (hash.Length != 16 || !ulong.TryParse(hash, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong checksum))
                throw read.Error($"{context} has checksum '{hash}', expected 16 hexadecimal digits");
            entries.Add(new EpackTensorEntry(info, offset, length, checksum));
            index++;
        }
        return entries;
    }

    private static FormatParameters ReadParameters(Reader read, JsonElement element, string context)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw read.Error($"{context} 'parameters' must be an object, found {element.ValueKind}");
        var parameters = new FormatParameters();
        foreach (var member in element.EnumerateObject())
        {
            int NonNegative() => member.Value.ValueKind == JsonValueKind.Number && member.Value.TryGetInt32(out int value) && value >= 0
                ? value
                : throw read.Error($"{context} parameter '{member.Name}' must be a non-negative integer, found {member.Value.GetRawText()}");
            parameters = member.Name switch
            {
                "group_size" => parameters with { GroupSize = NonNegative() },
                "bits" => parameters with { Bits = NonNegative() },
                "planes" => parameters with { Planes = NonNegative() },
                "rank" => parameters with { Rank = NonNegative() },
                "reference" => parameters with
                {
                    Reference = member.Value is { ValueKind: JsonValueKind.String } text && text.GetString() is { Length: > 0 } name
                        ? name
                        : throw read.Error($"{context} parameter 'reference' must be a tensor name, found {member.Value.GetRawText()}"),
                },
                _ => throw read.Error($"{context} has an unknown format parameter '{member.Name}' (known: group_size, bits, planes, rank, reference)"),
            };
        }
        return parameters;
    }

    private static void WriteParameters(Utf8JsonWriter writer, FormatParameters parameters)
    {
        writer.WriteStartObject();
        if (parameters.GroupSize != 0) writer.WriteNumber("group_size", parameters.GroupSize);
        if (parameters.Bits != 0) writer.WriteNumber("bits", parameters.Bits);
        if (parameters.Planes != 0) writer.WriteNumber("planes", parameters.Planes);
        if (parameters.Rank != 0) writer.WriteNumber("rank", parameters.Rank);
        if (parameters.Reference is { } reference) writer.WriteString("reference", reference);
        writer.WriteEndObject();
    }

    private static byte[] Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
            body(writer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Field access for one block; every error names the file and the block.</summary>
    private sealed class Reader(string path, string block)
    {
        public InvalidDataException Error(string message) => new($"{path}: {block}: {message}");

        public JsonDocument Parse(byte[] bytes)
        {
            // The JSON reader leaves invalid UTF-8 inside strings for GetString to throw on later.
            if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw Error("not valid UTF-8");
            try
            {
                return JsonDocument.Parse(bytes);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}: {block}: not valid JSON ({e.Message})", e);
            }
        }

        public static JsonElement? Member(JsonElement element, string name) =>
            element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

        public JsonElement Required(JsonElement element, string name, string? context = null) =>
            Member(element, name) ?? throw Error($"{Prefix(context)}missing '{name}'");

        public JsonElement Object(JsonElement element, string what) =>
            element.ValueKind == JsonValueKind.Object ? element : throw Error($"{what} must be a JSON object, found {element.ValueKind}");

        public JsonElement Array(JsonElement element, string name, string? context = null) =>
            Required(element, name, context) is { ValueKind: JsonValueKind.Array } array ? array : throw Error($"{Prefix(context)}'{name}' must be an array");

        public string String(JsonElement element, string name, string? context = null) =>
            Required(element, name, context) is { ValueKind: JsonValueKind.String } text ? text.GetString()! : throw Error($"{Prefix(context)}'{name}' must be a string");

        public string? OptionalString(JsonElement element, string name) => Member(element, name) switch
        {
            null => null,
            { ValueKind: JsonValueKind.String } text => text.GetString(),
            _ => throw Error($"'{name}' must be a string"),
        };

        public long Integer(JsonElement element, string name, string context, long min, long max) =>
            Required(element, name, context) is { ValueKind: JsonValueKind.Number } number && number.TryGetInt64(out long value) && value >= min && value <= max
                ? value
                : throw Error($"{context} '{name}' must be an integer from {min} to {max}");

        private static string Prefix(string? context) => context is null ? "" : context + " ";
    }
}
