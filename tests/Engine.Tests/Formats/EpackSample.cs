using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using System.Text.Json.Nodes;
using Engine.Formats;
using Engine.Formats.Epack;
using Engine.Quantizers;

namespace Engine.Tests.Formats;

/// <summary>
/// Small .epack files for tests: a tiny Llama config, one matrix in every weight format that has an encoder (so
/// every format registered in the table is covered), a norm vector and a 3-D tensor; and surgery on the bytes of a
/// file (edit the directory, then re-seal the checksums so the edit reaches the validation behind them).
/// </summary>
internal static class EpackSample
{
    public const string ConfigJson = """
        {"model_type": "llama", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1,
         "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
         "rope_theta": 50000.0, "tie_word_embeddings": false}
        """;

    public const string GenerationConfigJson = """{"bos_token_id": 1, "eos_token_id": [2, 3]}""";

    public static EpackMetadata Metadata(EpackTokenizer? tokenizer) => new()
    {
        Architecture = "llama",
        ConfigJson = ConfigJson,
        GenerationConfigJson = GenerationConfigJson,
        RopeLayout = RopeLayout.RotateHalf,
        Tokenizer = tokenizer,
        Recipe = new EpackRecipe("f16", default, "rtn", ["*.norm.weight", "lm_head.weight=f32"]),
        Provenance = new EpackProvenance("/models/tiny", [new EpackSourceFile("/models/tiny/config.json", 321)], "1.2.3",
            new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.Zero), "engine quantize /models/tiny -o tiny.epack --format f16"),
    };

    /// <summary>A [rows, columns] random matrix in every format with an encoder (companions first), a vector and a 3-D tensor.</summary>
    public static List<StoredBytes> Tensors(int rows, int columns, int seed)
    {
        var random = new Random(seed);
        float[] Values(int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        var tensors = new List<StoredBytes>();
        foreach (var format in WeightTypes.All)
        {
            IWeightEncoder encoder;
            try
            {
                encoder = WeightEncoders.Get(format.Type);
            }
            catch (NotSupportedException)
            {
                continue;
            }
            var encoded = encoder.Encode($"model.w_{format.Name}.weight", Values(rows * columns), rows, columns, format.DefaultParameters);
            tensors.AddRange(encoded.Companions);
            tensors.Add(encoded.Tensor);
        }
        tensors.Add(F32("model.norm.weight", [columns], Values(columns)));
        tensors.Add(F32("model.stacked", [2, 3, 5], Values(30)));
        return tensors;
    }

    public static StoredBytes F32(string name, long[] shape, float[] values)
    {
        var data = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), values[i]);
        return new StoredBytes(new TensorInfo(name, shape, WeightType.F32), data);
    }

    public static void Write(string path, EpackMetadata metadata, IEnumerable<StoredBytes> tensors)
    {
        using var writer = EpackWriter.Create(path);
        foreach (var tensor in tensors) writer.Add(tensor.Info, tensor.Data);
        writer.Complete(metadata);
    }

    /// <summary>A small tokenizer.json (byte-level BPE over printable ASCII) as an embedded tokenizer.</summary>
    public static EpackTokenizer SmallTokenizer() => new(
        EpackTokenizer.TokenizerJsonKind,
        Encoding.UTF8.GetBytes(Tokenization.TinyTokenizerJson.ByteLevel(["th", "the"], ["t h", "th e"]).ToJsonString()),
        """{"add_bos_token": false}""",
        null);

    /// <summary>The header's fields: (metadata offset, metadata length, directory offset, directory length).</summary>
    public static (long MetadataOffset, long MetadataLength, long DirectoryOffset, long DirectoryLength) Blocks(byte[] file) => (
        BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(16)), BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(24)),
        BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(32)), BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(40)));

    /// <summary>
    /// Rewrites the directory of a well-formed file (the writer puts it last): <paramref name="edit"/> changes the
    /// entries, the header's lengths follow, and the checksums are recomputed so only the edit is wrong.
    /// </summary>
    public static byte[] EditDirectory(byte[] file, Action<JsonArray> edit)
    {
        var (_, _, directoryOffset, directoryLength) = Blocks(file);
        var directory = JsonNode.Parse(file.AsSpan((int)directoryOffset, (int)directoryLength))!.AsArray();
        edit(directory);
        byte[] replaced = Encoding.UTF8.GetBytes(directory.ToJsonString());
        byte[] result = [.. file.AsSpan(0, (int)directoryOffset), .. replaced];
        BinaryPrimitives.WriteInt64LittleEndian(result.AsSpan(40), replaced.Length);
        BinaryPrimitives.WriteInt64LittleEndian(result.AsSpan(48), result.Length);
        return Reseal(result);
    }

    /// <summary>
    /// Makes the checksums agree with whatever the bytes now say, as far as the header lets one find the blocks: each
    /// tensor's XXH3 (when the directory still parses, its entries lie inside the file and the hex digits keep their
    /// length), then the header checksum.
    /// </summary>
    public static byte[] Reseal(byte[] file)
    {
        if (file.Length < 64) return file;
        var (metadataOffset, metadataLength, directoryOffset, directoryLength) = Blocks(file);
        bool Inside(long offset, long length) => offset >= 64 && length >= 0 && length <= file.Length && offset <= file.Length - length;
        if (!Inside(metadataOffset, metadataLength) || !Inside(directoryOffset, directoryLength)) return file;
        var directory = file.AsSpan((int)directoryOffset, (int)directoryLength);
        if (TryParse(directory) is { } entries)
        {
            foreach (var entry in entries.OfType<JsonObject>())
            {
                if (entry["offset"] is JsonValue o && o.TryGetValue(out long offset) && entry["length"] is JsonValue l && l.TryGetValue(out long length)
                    && Inside(offset, length))
                    entry["xxh3"] = XxHash3.HashToUInt64(file.AsSpan((int)offset, (int)length)).ToString("x16", CultureInfo.InvariantCulture);
            }
            byte[] rewritten = Encoding.UTF8.GetBytes(entries.ToJsonString());
            if (rewritten.Length == directory.Length) rewritten.CopyTo(directory);
        }
        var hash = new XxHash3();
        hash.Append(file.AsSpan(0, 56));
        hash.Append(file.AsSpan((int)metadataOffset, (int)metadataLength));
        hash.Append(file.AsSpan((int)directoryOffset, (int)directoryLength));
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(56), hash.GetCurrentHashAsUInt64());
        return file;
    }

    /// <summary>The directory as JSON, or null when the bytes are no longer a directory a JsonNode can edit.</summary>
    private static JsonArray? TryParse(ReadOnlySpan<byte> directory)
    {
        try
        {
            var entries = JsonNode.Parse(directory) as JsonArray;
            // Touch every member now: JsonNode defers some errors (duplicate names) to first access.
            entries?.ToJsonString();
            foreach (var entry in entries?.OfType<JsonObject>() ?? []) _ = entry.Count;
            return entries;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Reads every tensor and decodes it with its format's CPU reference (what loading onto the CPU does).</summary>
    public static void ReadAndDecodeAll(EpackFile file)
    {
        foreach (var info in file.Tensors) file.ReadFloat32(info.Name);
    }

    public static JsonObject Entry(JsonArray directory, string name) =>
        directory.OfType<JsonObject>().Single(e => (string?)e["name"] == name);
}
