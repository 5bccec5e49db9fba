using System.Buffers.Binary;
using Engine.Formats;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class Llama2cFileTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static string Stories => TestPaths.Shared("models", "stories260K", "stories260K.bin");

    private static readonly string[] LayerSuffixes =
    [
        "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
        "self_attn.o_proj.weight", "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.down_proj.weight",
        "mlp.up_proj.weight",
    ];

    [Fact]
    public void Stories260K_header_becomes_a_llama_config()
    {
        using var file = Llama2cFile.Open(Stories);
        var config = file.Config;

        Assert.Equal("llama", config.Architecture);
        Assert.Equal(64, config.HiddenSize);
        Assert.Equal(172, config.IntermediateSize);
        Assert.Equal(5, config.LayerCount);
        Assert.Equal(8, config.HeadCount);
        Assert.Equal(4, config.KvHeadCount);
        Assert.Equal(8, config.HeadDim);
        Assert.Equal(512, config.VocabSize);
        Assert.Equal(512, config.MaxPositions);
        Assert.True(config.TieWordEmbeddings);
        Assert.Equal(RopeLayout.Interleaved, config.RopeLayout);
        Assert.Equal(1e-5, config.RmsNormEps);
        Assert.Equal(10000.0, config.RopeTheta);
        Assert.Equal(1, config.BosTokenId);
        Assert.Empty(config.EosTokenIds);
        Assert.Null(config.Raw);
    }

    [Fact]
    public void Stories260K_tensors_have_hf_names_and_shapes_and_account_for_every_byte()
    {
        using var file = Llama2cFile.Open(Stories);

        Assert.Equal(1 + 5 * 9 + 1, file.Tensors.Count);
        Assert.False(file.TryGet("lm_head.weight", out _));
        Assert.All(file.Tensors, t => Assert.Equal(WeightType.F32, t.Type));

        var expected = new List<(string Name, long[] Shape)> { ("model.embed_tokens.weight", [512, 64]) };
        for (int i = 0; i < 5; i++)
        {
            long[][] shapes = [[64], [64, 64], [32, 64], [32, 64], [64, 64], [64], [172, 64], [64, 172], [172, 64]];
            expected.AddRange(LayerSuffixes.Zip(shapes, (suffix, shape) => ($"model.layers.{i}.{suffix}", shape)));
        }
        expected.Add(("model.norm.weight", [64]));
        Assert.Equal(expected.Select(e => e.Name), file.Tensors.Select(t => t.Name));
        Assert.Equal(expected.Select(e => e.Shape), file.Tensors.Select(t => t.Shape));

        // 28-byte header + every tensor + freq_cis_real and freq_cis_imag (512 positions x 4 each) = the file.
        long floats = file.Tensors.Sum(t => t.ElementCount) + 2 * 512 * (8 / 2);
        Assert.Equal(264_128, floats);
        Assert.Equal(28 + 4 * floats, new FileInfo(Stories).Length);
        Assert.Equal(1_056_540, file.ExpectedLength);
    }

    [Fact]
    public void Stories260K_values_come_from_the_llama2c_offsets()
    {
        using var file = Llama2cFile.Open(Stories);
        byte[] raw = File.ReadAllBytes(Stories);
        float At(long floatIndex) => BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan((int)(28 + floatIndex * 4)));

        // llama2.c layout in floats: emb 512*64, rms_att 5*64, wq 5*64*64, wk 5*32*64, wv 5*32*64, wo 5*64*64,
        // rms_ffn 5*64, w1 5*172*64, w2 5*64*172, w3 5*172*64, rms_final 64.
        (string Name, long Start)[] probes =
        [
            ("model.embed_tokens.weight", 0),
            ("model.layers.0.input_layernorm.weight", 32768),
            ("model.layers.4.input_layernorm.weight", 32768 + 4 * 64),
            ("model.layers.2.self_attn.q_proj.weight", 33088 + 2 * 4096),
            ("model.layers.3.self_attn.k_proj.weight", 53568 + 3 * 2048),
            ("model.layers.3.self_attn.v_proj.weight", 63808 + 3 * 2048),
            ("model.layers.1.self_attn.o_proj.weight", 74048 + 1 * 4096),
            ("model.layers.4.post_attention_layernorm.weight", 94528 + 4 * 64),
            ("model.layers.0.mlp.gate_proj.weight", 94848),
            ("model.layers.2.mlp.down_proj.weight", 149888 + 2 * 11008),
            ("model.layers.4.mlp.up_proj.weight", 204928 + 4 * 11008),
            ("model.norm.weight", 259968),
        ];
        foreach (var (name, start) in probes)
        {
            float[] values = file.ReadFloat32(name);
            var info = file.Tensors.Single(t => t.Name == name);
            Assert.Equal(info.ElementCount, values.Length);
            Assert.Equal((28 + start * 4, info.ElementCount * 4), file.GetByteRange(name));
            foreach (long i in new[] { 0L, 1L, values.Length / 2, values.Length - 1 })
                Assert.Equal(At(start + i), values[i]);
        }
        // The final norm's gains are what a trained RMSNorm holds: all positive, none absurd.
        Assert.All(file.ReadFloat32("model.norm.weight"), v => Assert.InRange(v, 0.01f, 100f));
    }

    /// <summary>A legacy llama2.c file whose i-th float (counting from after the header) holds the value i.</summary>
    private static byte[] Synthetic(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen, int extraBytes = 0)
    {
        int headSize = dim / heads, kvDim = dim * kvHeads / heads, v = Math.Abs(vocab);
        long floats = (long)v * dim + layers * (2L * dim + 2L * dim * dim + 2L * kvDim * dim + 3L * hidden * dim) + dim
            + (long)seqLen * headSize + (vocab < 0 ? (long)v * dim : 0);
        var bytes = new byte[28 + floats * 4 + extraBytes];
        int[] header = [dim, hidden, layers, heads, kvHeads, vocab, seqLen];
        for (int i = 0; i < 7; i++)
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * 4), header[i]);
        for (int i = 0; i < floats; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(28 + i * 4), i);
        return bytes;
    }

    [Fact]
    public void Separate_classifier_is_lm_head_after_the_skipped_freq_cis_tables()
    {
        // dim 8, hidden 12, 2 layers, 2 heads, 1 kv head (kv_dim 4, head 4), vocab -10 (separate classifier), seq 3.
        string path = _temp.Write("separate.bin", Synthetic(8, 12, 2, 2, 1, -10, 3));
        using var file = Llama2cFile.Open(path);

        Assert.False(file.Config.TieWordEmbeddings);
        Assert.Equal(10, file.Config.VocabSize);
        Assert.Equal((2, 1, 4, 3), (file.Config.HeadCount, file.Config.KvHeadCount, file.Config.HeadDim, file.Config.MaxPositions));
        Assert.Equal("lm_head.weight", file.Tensors[^1].Name);
        Assert.Equal([10L, 8], file.Tensors[^1].Shape);

        // Starts in floats: emb 0 (80), rms_att 80 (2x8), wq 96 (2x64), wk 224 (2x32), wv 288 (2x32), wo 352 (2x64),
        // rms_ffn 480 (2x8), w1 496 (2x96), w2 688 (2x96), w3 880 (2x96), rms_final 1072 (8), freq 1080 (2x6), wcls 1092.
        (string Name, int Start, int Count)[] expected =
        [
            ("model.embed_tokens.weight", 0, 80),
            ("model.layers.0.input_layernorm.weight", 80, 8), ("model.layers.1.input_layernorm.weight", 88, 8),
            ("model.layers.0.self_attn.q_proj.weight", 96, 64), ("model.layers.1.self_attn.q_proj.weight", 160, 64),
            ("model.layers.0.self_attn.k_proj.weight", 224, 32), ("model.layers.1.self_attn.k_proj.weight", 256, 32),
            ("model.layers.0.self_attn.v_proj.weight", 288, 32), ("model.layers.1.self_attn.v_proj.weight", 320, 32),
            ("model.layers.0.self_attn.o_proj.weight", 352, 64), ("model.layers.1.self_attn.o_proj.weight", 416, 64),
            ("model.layers.0.post_attention_layernorm.weight", 480, 8), ("model.layers.1.post_attention_layernorm.weight", 488, 8),
            ("model.layers.0.mlp.gate_proj.weight", 496, 96), ("model.layers.1.mlp.gate_proj.weight", 592, 96),
            ("model.layers.0.mlp.down_proj.weight", 688, 96), ("model.layers.1.mlp.down_proj.weight", 784, 96),
            ("model.layers.0.mlp.up_proj.weight", 880, 96), ("model.layers.1.mlp.up_proj.weight", 976, 96),
            ("model.norm.weight", 1072, 8),
            ("lm_head.weight", 1092, 80),
        ];
        Assert.Equal(expected.Length, file.Tensors.Count);
        foreach (var (name, start, count) in expected)
            Assert.Equal(Enumerable.Range(start, count).Select(i => (float)i), file.ReadFloat32(name));
        Assert.Equal([12L, 8], file.Tensors.Single(t => t.Name == "model.layers.1.mlp.up_proj.weight").Shape);
        Assert.Equal([8L, 12], file.Tensors.Single(t => t.Name == "model.layers.1.mlp.down_proj.weight").Shape);
        Assert.Equal([4L, 8], file.Tensors.Single(t => t.Name == "model.layers.0.self_attn.k_proj.weight").Shape);
    }

    [Fact]
    public void Truncated_file_reports_expected_and_found_sizes()
    {
        byte[] whole = File.ReadAllBytes(Stories);
        string path = _temp.Write("truncated.bin", whole[..^100]);
        var error = Allocation.Throws<InvalidDataException>(() => Llama2cFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("truncated: expected 1056540 bytes, found 1056440", error.Message);
    }

    [Fact]
    public void Trailing_bytes_are_a_size_mismatch()
    {
        string path = _temp.Write("long.bin", Synthetic(8, 12, 1, 2, 2, 10, 2, extraBytes: 4));
        var error = Assert.Throws<InvalidDataException>(() => Llama2cFile.Open(path));
        Assert.Contains("size mismatch", error.Message);
    }

    [Fact]
    public void Short_header_is_truncated()
    {
        string path = _temp.Write("header.bin", new byte[20]);
        var error = Assert.Throws<InvalidDataException>(() => Llama2cFile.Open(path));
        Assert.Contains("truncated: expected at least the 28-byte llama2.c header, found 20 bytes", error.Message);
    }

    private string Header(params int[] fields)
    {
        var bytes = new byte[28];
        for (int i = 0; i < 7; i++)
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * 4), fields[i]);
        return _temp.Write($"h{Guid.NewGuid():N}.bin", bytes);
    }

    [Fact]
    public void Huge_dims_fail_on_the_size_check_without_allocating()
    {
        string path = Header(1 << 20, 4, 1, 1, 1, 4, 4);
        var error = Allocation.Throws<InvalidDataException>(() => Llama2cFile.Open(path));
        // dim D = 2^20 (kv_dim D, head size D): wq, wk, wv, wo are D^2 floats each; embedding 4D, three norms 3D,
        // w1, w2, w3 4D each, freq_cis 2 x 4 x D/2: 4 D^2 + 23 D floats, 16 TiB.
        Assert.Contains($"truncated: expected {28 + 4 * (4 * (1L << 40) + 23 * (1L << 20))} bytes", error.Message);
        Assert.Contains(" bytes, found 28", error.Message);
    }

    [Theory]
    [InlineData(new[] { 1 << 30, 1 << 30, 1 << 30, 1, 1, 4, 4 }, "the sizes it implies overflow")]
    [InlineData(new[] { 1 << 30, 4, 1, 1, 1, 4, 4 }, "the sizes it implies overflow")]
    [InlineData(new[] { int.MaxValue - 3, int.MaxValue, int.MaxValue, 2, 1, -int.MaxValue, int.MaxValue }, "the sizes it implies overflow")]
    [InlineData(new[] { -64, 172, 5, 8, 4, 512, 512 }, "every size must be positive")]
    [InlineData(new[] { 64, 172, 0, 8, 4, 512, 512 }, "every size must be positive")]
    [InlineData(new[] { 64, 172, 5, 8, 4, 0, 512 }, "every size must be positive")]
    [InlineData(new[] { 64, 172, 5, 8, 4, int.MinValue, 512 }, "every size must be positive")]
    [InlineData(new[] { 64, 172, 5, 6, 3, 512, 512 }, "n_heads does not divide dim")]
    [InlineData(new[] { 64, 172, 5, 8, 3, 512, 512 }, "n_kv_heads does not divide n_heads")]
    [InlineData(new[] { 24, 172, 5, 8, 4, 512, 512 }, "head size 3 is odd")]
    public void Bad_headers_are_rejected_with_the_reason(int[] fields, string reason)
    {
        string path = Header(fields);
        var error = Allocation.Throws<InvalidDataException>(() => Llama2cFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("bad llama2.c header (dim=", error.Message);
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public void Other_formats_behind_a_bin_extension_are_recognised()
    {
        var zip = new byte[64];
        "PK\u0003\u0004"u8.CopyTo(zip);
        string pytorch = _temp.Write("pytorch_model.bin", zip);
        Assert.Contains("zip archive", Assert.Throws<InvalidDataException>(() => Llama2cFile.Open(pytorch)).Message);

        var v1 = new byte[256];
        BinaryPrimitives.WriteUInt32LittleEndian(v1, 0x616b3432);
        BinaryPrimitives.WriteInt32LittleEndian(v1.AsSpan(4), 1);
        string exported = _temp.Write("v1.bin", v1);
        Assert.Contains("llama2.c version 1 export", Assert.Throws<InvalidDataException>(() => Llama2cFile.Open(exported)).Message);
    }
}
