using System.Buffers.Binary;
using System.Text.Json;
using Engine.Formats;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class SafetensorsFileTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Reads_f32_f16_and_bf16_values_exactly_and_the_metadata()
    {
        // f16 0x3C00 = 1, 0xC000 = -2, 0x3555 = 0.333251953125; bf16 0x3F80 = 1, 0xC0A0 = -5, 0x3EAB = 0.333984375
        byte[] f16 = [0x00, 0x3C, 0x00, 0xC0, 0x55, 0x35];
        byte[] bf16 = [0x80, 0x3F, 0xA0, 0xC0, 0xAB, 0x3E, 0x00, 0x00];
        string path = _temp.Write("model.safetensors", new SafetensorsBuilder()
            .Metadata("format", "pt")
            .AddF32("a.weight", [2, 3], 1.5f, -2.25f, 3e-8f, 1e20f, -0f, 7f)
            .Add("b.weight", "F16", [3], f16)
            .Add("c.weight", "BF16", [2, 2], bf16)
            .Add("empty", "F32", [0, 4], [])
            .Build());

        using var file = SafetensorsFile.Open(path);

        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(["a.weight", "b.weight", "c.weight", "empty"], file.Tensors.Select(t => t.Name));
        Assert.Equal([2L, 3L], file.Tensors[0].Shape);
        Assert.Equal([WeightType.F32, WeightType.F16, WeightType.BF16, WeightType.F32], file.Tensors.Select(t => t.Type));
        Assert.Equal([1.5f, -2.25f, 3e-8f, 1e20f, -0f, 7f], file.ReadFloat32("a.weight"));
        Assert.Equal([1f, -2f, 0.333251953125f], file.ReadFloat32("b.weight"));
        Assert.Equal([1f, -5f, 0.333984375f, 0f], file.ReadFloat32("c.weight"));
        Assert.Empty(file.ReadFloat32("empty"));
        Assert.Equal(f16, file.ReadBytes("b.weight"));

        var partial = new byte[4];
        file.ReadBytes("c.weight", 2, partial);
        Assert.Equal(bf16[2..6], partial);
        Assert.Equal(new FileInfo(path).Length, file.DataOffset + file.DataLength);
        Assert.Equal((file.DataOffset + 24 + 6, 8L), file.GetByteRange("c.weight"));
    }

    [Fact]
    public void Hf_llama_fixture_has_every_tensor_with_its_shape_and_the_bytes_at_its_offsets()
    {
        string path = TestPaths.Shared("fixtures", "hf-tiny", "llama", "model.safetensors");
        using var file = SafetensorsFile.Open(path);

        Assert.Equal(21, file.Tensors.Count);
        Assert.All(file.Tensors, t => Assert.Equal(WeightType.F32, t.Type));
        var shapes = file.Tensors.ToDictionary(t => t.Name, t => t.Shape);
        Assert.Equal([256L, 64], shapes["model.embed_tokens.weight"]);
        Assert.Equal([256L, 64], shapes["lm_head.weight"]);
        Assert.Equal([64L], shapes["model.norm.weight"]);
        for (int layer = 0; layer < 2; layer++)
        {
            string p = $"model.layers.{layer}.";
            Assert.Equal([64L, 64], shapes[p + "self_attn.q_proj.weight"]);
            Assert.Equal([32L, 64], shapes[p + "self_attn.k_proj.weight"]);
            Assert.Equal([32L, 64], shapes[p + "self_attn.v_proj.weight"]);
            Assert.Equal([64L, 64], shapes[p + "self_attn.o_proj.weight"]);
            Assert.Equal([172L, 64], shapes[p + "mlp.gate_proj.weight"]);
            Assert.Equal([172L, 64], shapes[p + "mlp.up_proj.weight"]);
            Assert.Equal([64L, 172], shapes[p + "mlp.down_proj.weight"]);
            Assert.Equal([64L], shapes[p + "input_layernorm.weight"]);
            Assert.Equal([64L], shapes[p + "post_attention_layernorm.weight"]);
        }

        // Every byte of the data section belongs to exactly one tensor: 8 + header + sum of tensor sizes = file length.
        long tensorBytes = file.Tensors.Sum(t => t.ElementCount * 4);
        Assert.Equal(new FileInfo(path).Length, file.DataOffset + tensorBytes);

        // Independent reading of the raw file: the header's own offsets, little-endian floats.
        byte[] raw = File.ReadAllBytes(path);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(raw);
        using var header = JsonDocument.Parse(raw.AsMemory(8, (int)headerLength));
        var entry = header.RootElement.GetProperty("model.layers.1.mlp.down_proj.weight");
        long begin = 8 + headerLength + entry.GetProperty("data_offsets")[0].GetInt64();
        float[] values = file.ReadFloat32("model.layers.1.mlp.down_proj.weight");
        Assert.Equal(64 * 172, values.Length);
        foreach (int index in new[] { 0, 1, 171, 172, 5000, 64 * 172 - 1 })
            Assert.Equal(BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan((int)(begin + index * 4))), values[index]);
        Assert.Contains(values, v => v != 0);
    }

    [Fact]
    public void File_shorter_than_the_length_prefix_is_truncated()
    {
        string path = _temp.Write("short.safetensors", [1, 0, 0]);
        var error = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("truncated", error.Message);
    }

    [Fact]
    public void Header_length_past_the_end_of_the_file_fails_before_allocating_it()
    {
        string header = """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""";
        string path = _temp.Write("lying.safetensors", SafetensorsBuilder.Compose(90_000_000, header, new byte[4]));

        var error = Allocation.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));

        Assert.Contains(path, error.Message);
        Assert.Contains("header length 90000000 runs past the end of the file", error.Message);
    }

    [Fact]
    public void Absurd_header_length_is_refused_before_allocating_it()
    {
        string path = _temp.Write("absurd.safetensors", SafetensorsBuilder.Compose(1UL << 62, "{}", []));
        var error = Allocation.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains($"header length {1UL << 62} is larger than the 100000000-byte limit", error.Message);
    }

    [Fact]
    public void Truncated_data_section_is_reported_with_the_offsets_that_run_past_it()
    {
        byte[] whole = new SafetensorsBuilder().AddF32("x", [4], 1, 2, 3, 4).AddF32("y", [2], 5, 6).Build();
        string path = _temp.Write("truncated.safetensors", whole[..^3]);

        var error = Allocation.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));

        Assert.Contains(path, error.Message);
        Assert.Contains("tensor 'y' data_offsets [16, 24] run past the end of the data section (21 bytes)", error.Message);
    }

    [Fact]
    public void Huge_offsets_in_a_small_file_fail_without_allocating()
    {
        string header = """{"w":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}""";
        string path = _temp.Write("huge.safetensors", SafetensorsBuilder.Compose(header, new byte[16]));
        var error = Allocation.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains("tensor 'w' data_offsets [0, 4000000000] run past the end of the data section (16 bytes)", error.Message);
    }

    [Fact]
    public void Offsets_out_of_order_are_named()
    {
        string header = """{"x":{"dtype":"F32","shape":[1],"data_offsets":[10,5]}}""";
        string path = _temp.Write("order.safetensors", SafetensorsBuilder.Compose(header, new byte[16]));
        var error = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Equal($"{path}: tensor 'x' data_offsets [10, 5] are out of order", error.Message);
    }

    [Fact]
    public void Byte_count_must_match_the_shape_and_dtype()
    {
        string header = """{"x":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}}""";
        string path = _temp.Write("size.safetensors", SafetensorsBuilder.Compose(header, new byte[8]));
        var error = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains("tensor 'x' data_offsets [0, 8] hold 8 bytes, but shape [2,3] of BF16 needs 12", error.Message);
    }

    [Theory]
    [InlineData("I64")]
    [InlineData("F64")]
    [InlineData("F8_E4M3")]
    public void Unsupported_dtype_names_the_tensor_and_the_dtype(string dtype)
    {
        string header = $$$"""{"ids":{"dtype":"{{{dtype}}}","shape":[1],"data_offsets":[0,8]}}""";
        string path = _temp.Write("dtype.safetensors", SafetensorsBuilder.Compose(header, new byte[8]));
        var error = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains($"tensor 'ids' has unsupported dtype '{dtype}'", error.Message);
    }

    [Fact]
    public void Malformed_json_header_names_the_file()
    {
        string path = _temp.Write("json.safetensors", SafetensorsBuilder.Compose("""{"x":{"dtype":"F32",""", new byte[4]));
        var error = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.StartsWith($"{path}: header is not valid JSON", error.Message);
    }

    [Theory]
    [InlineData("""{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", "has a dimension that is not a non-negative integer")]
    [InlineData("""{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}""", "has a dimension that is not a non-negative integer")]
    [InlineData("""{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}""", "has too many elements (overflow)")]
    [InlineData("""{"x":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,4]}}""", "has no valid byte size")]
    [InlineData("""{"x":{"dtype":"F32","data_offsets":[0,4]}}""", "tensor 'x' has no 'shape' array")]
    [InlineData("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}}""", "tensor 'x' has no 'data_offsets' [begin, end] pair")]
    [InlineData("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}""", "are not non-negative integers")]
    [InlineData("""{"x":{"shape":[1],"data_offsets":[0,4]}}""", "tensor 'x' has no string 'dtype'")]
    [InlineData("""[1, 2]""", "header must be a JSON object")]
    [InlineData("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", "tensor 'x' appears twice")]
    public void Bad_header_entries_are_rejected_with_the_reason(string header, string reason)
    {
        string path = _temp.Write("bad.safetensors", SafetensorsBuilder.Compose(header, new byte[8]));
        var error = Allocation.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public void Missing_tensor_and_out_of_range_partial_reads_are_errors()
    {
        string path = _temp.Write("model.safetensors", new SafetensorsBuilder().AddF32("x", [2], 1, 2).Build());
        using var file = SafetensorsFile.Open(path);

        Assert.False(file.TryGet("nope", out _));
        Assert.Equal($"tensor 'nope' not found in {path}", Assert.Throws<InvalidDataException>(() => file.ReadBytes("nope")).Message);
        Assert.Equal($"tensor 'nope' not found in {path}", Assert.Throws<InvalidDataException>(() => file.ReadFloat32("nope")).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => file.ReadBytes("x", 4, new byte[8]));
    }
}
