using System.Buffers.Binary;
using System.Text.Json;
using Engine.Formats;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class ShardedSafetensorsTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static string TinyproseIndex => TestPaths.Shared("models", "tinyprose-14m", "model.safetensors.index.json");

    [Fact]
    public void Tinyprose_index_routes_all_74_bf16_tensors_with_their_shapes()
    {
        using var model = ShardedSafetensors.Open(TinyproseIndex);

        Assert.Equal(3, model.Shards.Count);
        Assert.Equal(74, model.Tensors.Count); // embedding + final norm + 8 layers x 9, tied so no lm_head
        Assert.All(model.Tensors, t => Assert.Equal(WeightType.BF16, t.Type));
        Assert.False(model.TryGet("lm_head.weight", out _));

        var shapes = model.Tensors.ToDictionary(t => t.Name, t => t.Shape);
        Assert.Equal([4096L, 384], shapes["model.embed_tokens.weight"]);
        Assert.Equal([384L], shapes["model.norm.weight"]);
        for (int layer = 0; layer < 8; layer++)
        {
            string p = $"model.layers.{layer}.";
            Assert.Equal([384L, 384], shapes[p + "self_attn.q_proj.weight"]);
            Assert.Equal([128L, 384], shapes[p + "self_attn.k_proj.weight"]); // 2 kv heads x 64
            Assert.Equal([128L, 384], shapes[p + "self_attn.v_proj.weight"]);
            Assert.Equal([384L, 384], shapes[p + "self_attn.o_proj.weight"]);
            Assert.Equal([1024L, 384], shapes[p + "mlp.gate_proj.weight"]);
            Assert.Equal([1024L, 384], shapes[p + "mlp.up_proj.weight"]);
            Assert.Equal([384L, 1024], shapes[p + "mlp.down_proj.weight"]);
            Assert.Equal([384L], shapes[p + "input_layernorm.weight"]);
            Assert.Equal([384L], shapes[p + "post_attention_layernorm.weight"]);
        }

        // The index's own bookkeeping: 14,162,304 parameters, 2 bytes each.
        Assert.Equal(14_162_304L, model.Tensors.Sum(t => t.ElementCount));
        Assert.Equal("28324608", model.Metadata["total_size"]);
        Assert.Equal(28_324_608L, model.Tensors.Sum(t => t.ElementCount * 2));

        // Routing agrees with the index file read independently.
        using var index = JsonDocument.Parse(File.ReadAllBytes(TinyproseIndex));
        var weightMap = index.RootElement.GetProperty("weight_map").EnumerateObject().ToList();
        Assert.Equal(weightMap.Count, model.Tensors.Count);
        foreach (var entry in weightMap)
            Assert.Equal(entry.Value.GetString(), Path.GetFileName(model.ShardOf(entry.Name).Path));
    }

    [Theory]
    [InlineData("model.layers.7.self_attn.k_proj.weight")]
    [InlineData("model.embed_tokens.weight")]
    [InlineData("model.layers.3.input_layernorm.weight")]
    public void Bf16_values_decode_to_the_hand_decoded_raw_bits(string name)
    {
        using var model = ShardedSafetensors.Open(TinyproseIndex);
        float[] values = model.ReadFloat32(name);
        var info = model.Tensors.Single(t => t.Name == name);
        Assert.Equal(info.ElementCount, values.Length);

        // Locate the tensor in its shard by reading the index and the shard header ourselves.
        using var index = JsonDocument.Parse(File.ReadAllBytes(TinyproseIndex));
        string shard = Path.Combine(Path.GetDirectoryName(TinyproseIndex)!, index.RootElement.GetProperty("weight_map").GetProperty(name).GetString()!);
        byte[] raw = File.ReadAllBytes(shard);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(raw);
        using var header = JsonDocument.Parse(raw.AsMemory(8, (int)headerLength));
        var offsets = header.RootElement.GetProperty(name).GetProperty("data_offsets");
        long begin = 8 + headerLength + offsets[0].GetInt64();
        Assert.Equal(info.ElementCount * 2, offsets[1].GetInt64() - offsets[0].GetInt64());
        Assert.Equal(raw.AsSpan((int)begin, (int)(info.ElementCount * 2)).ToArray(), model.ReadBytes(name));

        long columns = info.Columns;
        foreach (long element in new[] { 0L, 1L, columns - 1, columns, info.ElementCount / 2 + 7, info.ElementCount - 1 }.Where(i => i < info.ElementCount))
        {
            ushort bits = BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan((int)(begin + element * 2)));
            Assert.Equal(HandDecodeBf16(bits), values[element]);
        }
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
        Assert.Contains(values, v => v != 0);
    }

    /// <summary>bfloat16 by its definition: sign, 8-bit exponent (bias 127), 7-bit fraction.</summary>
    private static double HandDecodeBf16(ushort bits)
    {
        int sign = bits >> 15 == 1 ? -1 : 1;
        int exponent = (bits >> 7) & 0xFF;
        int fraction = bits & 0x7F;
        Assert.NotEqual(0xFF, exponent); // no inf/nan in trained weights
        return exponent == 0
            ? sign * fraction / 128.0 * Math.Pow(2, -126)
            : sign * (1 + fraction / 128.0) * Math.Pow(2, exponent - 127);
    }

    [Fact]
    public void Missing_shard_file_is_named()
    {
        _temp.Write("model-00001-of-00002.safetensors", new SafetensorsBuilder().AddF32("a", [1], 1).Build());
        string index = _temp.Write("model.safetensors.index.json",
            """{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}""");

        var error = Assert.Throws<FileNotFoundException>(() => ShardedSafetensors.Open(index));

        Assert.Contains(index, error.Message);
        Assert.Contains("shard 'model-00002-of-00002.safetensors' (holding 'b') does not exist", error.Message);
    }

    [Fact]
    public void Tensor_the_index_puts_in_a_shard_that_lacks_it_is_an_error()
    {
        _temp.Write("s1.safetensors", new SafetensorsBuilder().AddF32("a", [1], 1).Build());
        string index = _temp.Write("model.safetensors.index.json", """{"weight_map": {"a": "s1.safetensors", "ghost": "s1.safetensors"}}""");
        var error = Assert.Throws<InvalidDataException>(() => ShardedSafetensors.Open(index));
        Assert.Contains("weight_map puts 'ghost' in shard 's1.safetensors', but that shard has no such tensor", error.Message);
    }

    [Theory]
    [InlineData("""{"weight_map": {"a": "../s1.safetensors"}}""", "is not a plain file name beside the index")]
    [InlineData("""{"weight_map": {"a": 3}}""", "weight_map entry 'a' must name a shard file")]
    [InlineData("""{"metadata": {}}""", "has no 'weight_map' object")]
    [InlineData("""{"weight_map": {}}""", "weight_map is empty")]
    [InlineData("""{"weight_map": {"a": """, "not valid JSON")]
    public void Bad_index_files_are_rejected_with_the_reason(string json, string reason)
    {
        string index = _temp.Write("model.safetensors.index.json", json);
        var error = Assert.Throws<InvalidDataException>(() => ShardedSafetensors.Open(index));
        Assert.Contains(index, error.Message);
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public void Reads_route_to_the_right_shard()
    {
        _temp.Write("s1.safetensors", new SafetensorsBuilder().AddF32("a", [2], 1, 2).AddF32("unlisted", [1], 9).Build());
        _temp.Write("s2.safetensors", new SafetensorsBuilder().AddF32("b", [3], 3, 4, 5).Build());
        string index = _temp.Write("model.safetensors.index.json", """{"weight_map": {"b": "s2.safetensors", "a": "s1.safetensors"}}""");

        using var model = ShardedSafetensors.Open(index);

        Assert.Equal(["b", "a"], model.Tensors.Select(t => t.Name));
        Assert.Equal([1f, 2f], model.ReadFloat32("a"));
        Assert.Equal([3f, 4f, 5f], model.ReadFloat32("b"));
        Assert.False(model.TryGet("unlisted", out _));
        Assert.Equal($"tensor 'unlisted' not found in {index}", Assert.Throws<InvalidDataException>(() => model.ReadFloat32("unlisted")).Message);
    }
}
