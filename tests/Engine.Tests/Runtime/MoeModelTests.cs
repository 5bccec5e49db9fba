using System.Text.Json;
using Engine.Formats;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Runtime.Vulkan;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// Mixture-of-experts models beyond the fixtures' logits (their state across calls and per decode step is checked for
/// every architecture by <see cref="ModelFixtureTests"/>): quantized experts, and small random models built here for
/// the parts the fixtures lack (Qwen2-MoE's gated shared expert and dense layers, DeepSeek-MoE's shared experts,
/// first_k_dense_replace and routed scaling), Vulkan against CPU.
/// </summary>
public sealed class MoeModelTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("lowrank")]
    [InlineData("binary")]
    [InlineData("q2")]
    [InlineData("pcdvq")]
    public void Quantized_experts_run_alike_on_both_backends(string formatName)
    {
        // Formats beyond ArchitectureFormatTests' q4 and SEFP: low-rank experts (factor stacks), PCDVQ (rotations per expert), other packings.
        string source = TestPaths.Shared("fixtures", "hf-tiny", "mixtral");
        string path = _temp.File($"mixtral-{formatName}.epack");
        using (var file = ModelFile.Open(source))
            ModelQuantizer.Quantize(file, path, ModelQuantizer.CreateRequest(formatName, null, null, null, null, null, []), "test");
        var reference = new ReferenceFile(Path.Combine(source, "reference.json"));
        WeightFormatChecks.AssertClose(FixtureRun.Logits(path, BackendKind.Cpu, reference), FixtureRun.Logits(path, BackendKind.Vulkan, reference),
            2e-3, $"mixtral in {formatName}, Vulkan against CPU");
    }

    [Fact]
    public void Qwen2_moe_with_a_gated_shared_expert_and_a_dense_layer_runs_alike_on_both_backends()
    {
        string folder = BuildModel("qwen2_moe", new Dictionary<string, object>
        {
            ["num_experts"] = 6, ["num_experts_per_tok"] = 2, ["moe_intermediate_size"] = 24, ["shared_expert_intermediate_size"] = 36,
            ["norm_topk_prob"] = false, ["decoder_sparse_step"] = 1, ["mlp_only_layers"] = new[] { 1 },
        }, layers: 3, denseLayers: [1], (layer, b) =>
        {
            AddExperts(b, $"model.layers.{layer}.mlp.", 6, 24, ["gate_proj", "up_proj", "down_proj"]);
            AddSwiGlu(b, $"model.layers.{layer}.mlp.shared_expert.", 36);
            Add(b, $"model.layers.{layer}.mlp.shared_expert_gate.weight", 1, Dim);
        });
        AssertBackendsAgree(folder);
    }

    [Fact]
    public void Deepseek_moe_with_shared_experts_and_dense_first_layers_runs_alike_on_both_backends()
    {
        string folder = BuildModel("deepseek", new Dictionary<string, object>
        {
            ["n_routed_experts"] = 5, ["num_experts_per_tok"] = 3, ["moe_intermediate_size"] = 20, ["n_shared_experts"] = 2,
            ["first_k_dense_replace"] = 1, ["moe_layer_freq"] = 1, ["norm_topk_prob"] = true, ["routed_scaling_factor"] = 1.5,
            ["scoring_func"] = "softmax",
        }, layers: 3, denseLayers: [0], (layer, b) =>
        {
            AddExperts(b, $"model.layers.{layer}.mlp.", 5, 20, ["gate_proj", "up_proj", "down_proj"]);
            AddSwiGlu(b, $"model.layers.{layer}.mlp.shared_experts.", 40);
        });
        AssertBackendsAgree(folder);
    }

    [Fact]
    public void A_router_the_config_does_not_expect_is_a_clear_error()
    {
        // The config makes every layer sparse (no mlp_only_layers), but layer 1 holds a dense MLP.
        string folder = BuildModel("qwen3_moe", new Dictionary<string, object>
        {
            ["num_experts"] = 4, ["num_experts_per_tok"] = 2, ["moe_intermediate_size"] = 16,
        }, layers: 2, denseLayers: [1], (layer, b) => AddExperts(b, $"model.layers.{layer}.mlp.", 4, 16, ["gate_proj", "up_proj", "down_proj"]));
        var error = Assert.Throws<InvalidDataException>(() => ModelLoader.Load(folder, new ModelOptions { Backend = BackendKind.Cpu }));
        Assert.Contains("model.layers.1.mlp.gate.weight", error.Message);
    }

    private const int Dim = 40, Vocab = 97, Hidden = 56, Heads = 4, KvHeads = 2;

    private static void AssertBackendsAgree(string folder)
    {
        int[] prompt = [.. Enumerable.Range(0, 11).Select(i => (i * 29 + 3) % Vocab)];
        float[] Run(BackendKind backend)
        {
            using var model = ModelLoader.Load(folder, new ModelOptions { Backend = backend, MaxContext = 32 });
            var state = model.CreateState();
            var logits = new float[(prompt.Length + 2) * Vocab];
            model.Forward(state, prompt, logits.AsSpan(0, prompt.Length * Vocab), allPositions: true);
            // Two decode steps: the single-token path of every expert op.
            model.Forward(state, [5], logits.AsSpan(prompt.Length * Vocab, Vocab), allPositions: false);
            model.Forward(state, [7], logits.AsSpan((prompt.Length + 1) * Vocab, Vocab), allPositions: false);
            return logits;
        }
        float[] cpu = Run(BackendKind.Cpu);
        WeightFormatChecks.AssertClose(cpu, Run(BackendKind.Vulkan), 1e-3, "Vulkan against CPU");
        Assert.True(cpu.Max(Math.Abs) > 1e-2, "the logits are not all near zero");
    }

    /// <summary>A random model of the Llama layout with the given MoE config; dense layers get an ordinary MLP.</summary>
    private string BuildModel(string modelType, Dictionary<string, object> moe, int layers, int[] denseLayers, Action<int, SafetensorsBuilder> sparseLayer)
    {
        var config = new Dictionary<string, object>
        {
            ["model_type"] = modelType, ["vocab_size"] = Vocab, ["hidden_size"] = Dim, ["intermediate_size"] = Hidden,
            ["num_hidden_layers"] = layers, ["num_attention_heads"] = Heads, ["num_key_value_heads"] = KvHeads,
            ["max_position_embeddings"] = 128, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 10000.0, ["tie_word_embeddings"] = false,
        };
        foreach (var (key, value) in moe) config[key] = value;
        var b = new SafetensorsBuilder();
        Add(b, "model.embed_tokens.weight", Vocab, Dim);
        Add(b, "lm_head.weight", Vocab, Dim);
        AddNorm(b, "model.norm.weight");
        int headDim = Dim / Heads;
        for (int layer = 0; layer < layers; layer++)
        {
            string p = $"model.layers.{layer}.";
            AddNorm(b, p + "input_layernorm.weight");
            AddNorm(b, p + "post_attention_layernorm.weight");
            Add(b, p + "self_attn.q_proj.weight", Heads * headDim, Dim);
            Add(b, p + "self_attn.k_proj.weight", KvHeads * headDim, Dim);
            Add(b, p + "self_attn.v_proj.weight", KvHeads * headDim, Dim);
            Add(b, p + "self_attn.o_proj.weight", Dim, Heads * headDim);
            if (denseLayers.Contains(layer)) AddSwiGlu(b, p + "mlp.", Hidden);
            else sparseLayer(layer, b);
        }
        string folder = Path.Combine(_temp.Root, modelType);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(config));
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), b.Build());
        return folder;
    }

    private static void Add(SafetensorsBuilder b, string name, int rows, int columns) =>
        b.AddF32(name, [rows, columns], WeightFormatChecks.RandomValues(rows * columns, 0.3));

    private static void AddNorm(SafetensorsBuilder b, string name) =>
        b.AddF32(name, [Dim], [.. WeightFormatChecks.RandomValues(Dim, 0.2).Select(v => 1 + v)]);

    private static void AddSwiGlu(SafetensorsBuilder b, string prefix, int hidden)
    {
        Add(b, prefix + "gate_proj.weight", hidden, Dim);
        Add(b, prefix + "up_proj.weight", hidden, Dim);
        Add(b, prefix + "down_proj.weight", Dim, hidden);
    }

    private static void AddExperts(SafetensorsBuilder b, string prefix, int experts, int size, string[] projections)
    {
        Add(b, prefix + "gate.weight", experts, Dim);
        for (int e = 0; e < experts; e++)
        {
            Add(b, $"{prefix}experts.{e}.{projections[0]}.weight", size, Dim);
            Add(b, $"{prefix}experts.{e}.{projections[1]}.weight", size, Dim);
            Add(b, $"{prefix}experts.{e}.{projections[2]}.weight", Dim, size);
        }
    }
}
