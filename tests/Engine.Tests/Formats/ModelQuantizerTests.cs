using Engine.Formats;
using Engine.Formats.Epack;
using Engine.Quantizers;
using Xunit;

namespace Engine.Tests.Formats;

/// <summary>Which format each tensor gets, what is copied as it is, and companions, on a small synthetic model.</summary>
public sealed class ModelQuantizerTests : IDisposable
{
    private const int Vocab = 96, Hidden = 128, Ffn = 160;

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Matrices_get_the_target_vectors_f32_and_overrides_win()
    {
        string source = WriteSource();
        var result = Quantize(source, "out.epack", "f16", "*.down_proj.weight");

        using var original = EpackFile.Open(source);
        using var packed = EpackFile.Open(_temp.File("out.epack"));
        Assert.Equal(WeightType.F16, packed.Require("model.embed_tokens.weight").Type);
        Assert.Equal(WeightType.F16, packed.Require("lm_head.weight").Type);
        Assert.Equal(WeightType.F16, packed.Require("model.layers.0.mlp.up_proj.weight").Type);
        Assert.InRange(result.RelativeErrors["model.layers.0.mlp.up_proj.weight"], 1e-6, 1e-3);

        // Kept: the source's bf16 bytes, untouched.
        Assert.Equal(WeightType.BF16, packed.Require("model.layers.0.mlp.down_proj.weight").Type);
        Assert.Equal(original.ReadBytes("model.layers.0.mlp.down_proj.weight"), packed.ReadBytes("model.layers.0.mlp.down_proj.weight"));
        Assert.Equal(0, result.RelativeErrors["model.layers.0.mlp.down_proj.weight"]);

        // Not 2-D: f32, same shape, same values.
        foreach (string name in new[] { "model.norm.weight", "model.stacked" })
        {
            var info = packed.Require(name);
            Assert.Equal(WeightType.F32, info.Type);
            Assert.Equal(original.Require(name).Shape, info.Shape);
            Assert.Equal(original.ReadFloat32(name), packed.ReadFloat32(name));
        }
        Assert.Equal(16.0, result.Sizes.Weights.Single(w => w.Info.Name == "lm_head.weight").BitsPerWeight);
        Assert.Equal(new FileInfo(_temp.File("out.epack")).Length, result.FileBytes);
    }

    [Fact]
    public void Below_8_bits_the_embedding_and_head_stay_at_q8_or_f16()
    {
        string source = WriteSource();
        bool hasQ8 = WeightTypes.TryGet("q8", out var q8);
        foreach (var format in Encodable().Where(f => f.BitsPerWeight(f.DefaultParameters) < 8))
        {
            string output = $"{format.Name}.epack";
            var result = Quantize(source, output, format.Name);
            using var packed = EpackFile.Open(_temp.File(output));
            var expected = hasQ8 ? q8.Type : WeightType.F16;
            Assert.Equal(expected, packed.Require("model.embed_tokens.weight").Type);
            Assert.Equal(expected, packed.Require("lm_head.weight").Type);
            Assert.Equal(format.Type, packed.Require("model.layers.0.mlp.up_proj.weight").Type);
            Assert.True(result.RelativeErrors["model.layers.0.mlp.up_proj.weight"] < 1, $"{format.Name}: error {result.RelativeErrors["model.layers.0.mlp.up_proj.weight"]}");
        }
        var same = Quantize(source, "bf16.epack", "bf16");
        Assert.Equal(WeightType.BF16, same.Sizes.Weights.Single(w => w.Info.Name == "model.embed_tokens.weight").Info.Type);
    }

    [Theory]
    [InlineData("hf-tiny/mamba", "backbone.embeddings.weight", WeightType.Q8)]
    [InlineData("hf-tiny/rwkv4", "rwkv.embeddings.weight", WeightType.Q8)]
    [InlineData("rwkv/rwkv7", "emb.weight", WeightType.Q8)]
    [InlineData("rwkv/rwkv7", "head.weight", WeightType.Q8)]
    [InlineData("rwkv/rwkv7", "blocks.0.att.key.weight", WeightType.Q4)]
    [InlineData("hf-tiny/mixtral", "model.layers.0.block_sparse_moe.gate.weight", WeightType.F32)]
    [InlineData("hf-tiny/mixtral", "model.layers.0.block_sparse_moe.experts.1.w2.weight", WeightType.Q4)]
    [InlineData("hf-tiny/qwen3_moe", "model.layers.1.mlp.gate.weight", WeightType.F32)]
    [InlineData("hf-tiny/llava", "multi_modal_projector.linear_1.weight", WeightType.Q8)]
    [InlineData("hf-tiny/llava", "language_model.model.embed_tokens.weight", WeightType.Q8)]
    [InlineData("hf-tiny/llava", "vision_tower.encoder.layers.0.mlp.fc1.weight", WeightType.Q4)]
    public void Each_family_keeps_its_embedding_head_and_routers_above_the_target(string fixture, string tensor, WeightType expected)
    {
        string output = _temp.File(fixture.Replace('/', '-') + ".epack");
        using (var source = ModelFile.Open(TestPaths.Shared(["fixtures", .. fixture.Split('/')])))
            ModelQuantizer.Quantize(source, output, ModelQuantizer.CreateRequest("q4", null, null, null, null, null, []), "test");
        using var packed = EpackFile.Open(output);
        Assert.Equal(expected, packed.Require(tensor).Type);
    }

    /// <summary>
    /// For every format whose encoder writes companions (codebooks, factors): a pack in that format re-quantized to
    /// f16 loses the companions, and one that keeps such a tensor carries them along, written once.
    /// </summary>
    [Fact]
    public void Companions_travel_with_the_tensors_that_reference_them()
    {
        string source = WriteSource();
        foreach (var format in Encodable())
        {
            string packedName = $"{format.Name}-all.epack";
            Quantize(source, packedName, format.Name);
            using var packed = EpackFile.Open(_temp.File(packedName));
            var companions = StoredSizes.Of(packed.Tensors, name => packed.GetByteRange(name).Length).Companions;
            if (companions.Count == 0) continue;

            var requantized = Quantize(_temp.File(packedName), $"{format.Name}-f16.epack", "f16");
            Assert.Empty(requantized.Sizes.Companions);
            Assert.Equal(WeightType.F16, requantized.Sizes.Weights.Single(w => w.Info.Name == "model.layers.0.mlp.up_proj.weight").Info.Type);

            var kept = Quantize(_temp.File(packedName), $"{format.Name}-kept.epack", "f16", "model.layers.0.mlp.up_proj.weight");
            using var keptFile = EpackFile.Open(_temp.File($"{format.Name}-kept.epack"));
            Assert.Equal(packed.ReadFloat32("model.layers.0.mlp.up_proj.weight"), keptFile.ReadFloat32("model.layers.0.mlp.up_proj.weight"));
            Assert.NotEmpty(kept.Sizes.Companions);
        }
    }

    private static IEnumerable<WeightFormat> Encodable() => WeightTypes.All.Where(f =>
    {
        try
        {
            WeightEncoders.Get(f.Type);
            return true;
        }
        catch (NotSupportedException)
        {
            return false;
        }
    });

    private QuantizeResult Quantize(string source, string output, string format, params string[] keep)
    {
        using var model = ModelFile.Open(source);
        var request = ModelQuantizer.CreateRequest(format, null, null, null, null, null, keep);
        return ModelQuantizer.Quantize(model, _temp.File(output), request, "test");
    }

    /// <summary>An f32/bf16 model with an embedding, a separate head, two projections, a norm and a 3-D tensor.</summary>
    private string WriteSource()
    {
        string path = _temp.File("source.epack");
        if (File.Exists(path)) return path;
        var random = new Random(7);
        float[] Values(int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        StoredBytes Bf16(string name, long[] shape)
        {
            int count = (int)shape.Aggregate(1L, (a, b) => a * b);
            var encoded = WeightEncoders.Encode(WeightType.BF16, name, Values(count), 1, count);
            return new StoredBytes(encoded.Info with { Shape = shape }, encoded.Data);
        }

        EpackSample.Write(path, EpackSample.Metadata(null) with { Recipe = null },
        [
            EpackSample.F32("model.embed_tokens.weight", [Vocab, Hidden], Values(Vocab * Hidden)),
            EpackSample.F32("lm_head.weight", [Vocab, Hidden], Values(Vocab * Hidden)),
            EpackSample.F32("model.layers.0.mlp.up_proj.weight", [Ffn, Hidden], Values(Ffn * Hidden)),
            Bf16("model.layers.0.mlp.down_proj.weight", [Hidden, Ffn]),
            Bf16("model.norm.weight", [Hidden]),
            EpackSample.F32("model.stacked", [2, 3, 5], Values(30)),
        ]);
        return path;
    }
}
