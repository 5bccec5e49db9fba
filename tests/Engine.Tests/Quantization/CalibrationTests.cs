using Engine.Formats;
using Engine.Quantizers;
using Engine.Quantizers.Calibration;
using Engine.Runtime;
using Engine.Runtime.Models;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Quantization;

/// <summary>
/// Sequential calibration on the fixture models (no tokenizer there, so the calibration text is sampled from the
/// model itself): what the recorded statistics are, that each layer sees the layers before it quantized, and GPTQ
/// end to end on every architecture family.
/// </summary>
public sealed class CalibrationTests
{
    private static readonly CalibrationOptions Small = new() { Windows = 2, Context = 12, Backend = BackendKind.Cpu, Seed = 3 };

    private static string Fixture(string name) => name.StartsWith("rwkv", StringComparison.Ordinal) && name != "rwkv4"
        ? TestPaths.Shared("fixtures", "rwkv", name)
        : TestPaths.Shared("fixtures", "hf-tiny", name);

    [Fact]
    public void The_first_layers_q_statistics_are_the_second_moment_of_the_normed_embeddings()
    {
        using var source = ModelFile.Open(Fixture("llama"));
        var calibrator = new LayerCalibrator(source, Small);
        var windows = calibrator.Windows;
        int dim = source.Config.HiddenSize;
        var statistics = calibrator.StatisticsOf("model.layers.0.self_attn.q_proj.weight", dim)!;
        // k and v read the same input: one statistics object.
        Assert.Same(statistics, calibrator.StatisticsOf("model.layers.0.self_attn.v_proj.weight", dim));

        float[] embedding = source.Tensors.ReadFloat32("model.embed_tokens.weight");
        float[] gamma = source.Tensors.ReadFloat32("model.layers.0.input_layernorm.weight");
        var expected = new double[dim * dim];
        var x = new double[dim];
        int tokens = 0;
        foreach (int[] window in windows)
        {
            foreach (int token in window)
            {
                double squares = 0;
                for (int i = 0; i < dim; i++) squares += (double)embedding[token * dim + i] * embedding[token * dim + i];
                double scale = 1 / Math.Sqrt(squares / dim + source.Config.RmsNormEps);
                for (int i = 0; i < dim; i++) x[i] = embedding[token * dim + i] * scale * gamma[i];
                for (int i = 0; i < dim; i++)
                {
                    for (int j = 0; j < dim; j++) expected[i * dim + j] += x[i] * x[j];
                }
                tokens++;
            }
        }
        Assert.Equal(tokens, statistics.Tokens);
        var mean = statistics.Mean();
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i] / tokens, mean[i], 1e-4 * (1 + Math.Abs(mean[i])));
    }

    [Fact]
    public void A_layer_is_calibrated_with_the_layers_before_it_quantized()
    {
        using var source = ModelFile.Open(Fixture("llama"));
        int dim = source.Config.HiddenSize;
        const string first = "model.layers.0.mlp.down_proj.weight", second = "model.layers.1.self_attn.q_proj.weight";
        var plain = new LayerCalibrator(source, Small);
        var plainFirst = plain.StatisticsOf(first, source.Config.IntermediateSize)!.Mean();
        var plainSecond = plain.StatisticsOf(second, dim)!.Mean();

        var quantized = new LayerCalibrator(source, Small);
        var quantizedFirst = quantized.StatisticsOf(first, source.Config.IntermediateSize)!.Mean();
        // Layer 0's output projection quantized to 2 bits: layer 1 now sees other inputs.
        var info = source.Tensors.Require("model.layers.0.self_attn.o_proj.weight");
        quantized.Quantized(WeightEncoders.Encode(WeightType.Q2, info.Name, source.Tensors.ReadFloat32(info.Name), (int)info.Rows, (int)info.Columns));
        var quantizedSecond = quantized.StatisticsOf(second, dim)!.Mean();

        Assert.Equal(plainFirst, quantizedFirst);
        Assert.NotEqual(plainSecond, quantizedSecond);
        Assert.Throws<InvalidOperationException>(() => quantized.StatisticsOf(first, source.Config.IntermediateSize));
    }

    [Fact]
    public void Every_routed_slot_reaches_one_experts_statistics()
    {
        using var source = ModelFile.Open(Fixture("mixtral"));
        var calibrator = new LayerCalibrator(source, Small);
        var config = source.Config;
        int experts = source.Tensors.Tensors.Count(t => t.Name.StartsWith("model.layers.0.block_sparse_moe.experts.", StringComparison.Ordinal) && t.Name.EndsWith(".w1.weight", StringComparison.Ordinal));
        int k = config.Raw!.Value.GetProperty("num_experts_per_tok").GetInt32();
        long gateTokens = 0, downTokens = 0;
        for (int e = 0; e < experts; e++)
        {
            gateTokens += calibrator.StatisticsOf($"model.layers.0.block_sparse_moe.experts.{e}.w1.weight", config.HiddenSize)?.Tokens ?? 0;
            downTokens += calibrator.StatisticsOf($"model.layers.0.block_sparse_moe.experts.{e}.w2.weight", config.IntermediateSize)?.Tokens ?? 0;
        }
        long tokens = Small.Windows * Small.Context;
        Assert.Equal(tokens * k, gateTokens);
        Assert.Equal(tokens * k, downTokens);
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("qwen2")]
    [InlineData("mixtral")]
    [InlineData("qwen3_moe")]
    [InlineData("mamba")]
    [InlineData("mamba2")]
    [InlineData("rwkv4")]
    [InlineData("rwkv6")]
    [InlineData("rwkv7")]
    public void Gptq_quantizes_every_architecture_deterministically(string fixture)
    {
        using var source = ModelFile.Open(Fixture(fixture));
        using var folder = new TempDirectory();
        var request = ModelQuantizer.CreateRequest("q4", null, null, null, null, "gptq", [], Small);
        var first = ModelQuantizer.Quantize(source, folder.File("a.epack"), request, "test");
        ModelQuantizer.Quantize(source, folder.File("b.epack"), request, "test");
        Assert.Contains("sampled from the model itself", first.Calibration);

        using var a = ModelFile.Open(folder.File("a.epack"));
        using var b = ModelFile.Open(folder.File("b.epack"));
        var names = ArchitectureRegistry.TensorNamesOf(source.Config.Architecture);
        int calibrated = 0;
        foreach (var tensor in a.Tensors.Tensors)
        {
            Assert.Equal(a.Tensors.ReadBytes(tensor.Name), b.Tensors.ReadBytes(tensor.Name));
            if (tensor.Type == WeightType.Q4 && names.LayerOf(tensor.Name) is not null) calibrated++;
        }
        Assert.True(calibrated > 0);
        // The file runs, and stays close to the source.
        using var model = ModelLoader.Load(a, new ModelOptions { Backend = BackendKind.Cpu, MaxContext = 16 });
        var logits = new float[model.Config.VocabSize];
        model.Forward(model.CreateState(), [1, 2, 3], logits, allPositions: false);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }
}
