using System.Text.Json.Nodes;
using Engine.Formats;
using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// Qwen2-VL without a transformers fixture: with text only, multimodal RoPE gives every component the text position,
/// so the Qwen2 fixture's weights under a Qwen2-VL config must reproduce the Qwen2 reference exactly.
/// </summary>
public sealed class Qwen2VlModelTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>The Qwen2 fixture re-labelled as Qwen2-VL (text fields at the top level, as Qwen's checkpoints have them).</summary>
    private string Qwen2AsQwen2Vl()
    {
        string source = TestPaths.Shared("fixtures", "hf-tiny", "qwen2");
        string folder = Path.Combine(_temp.Root, "qwen2-vl");
        Directory.CreateDirectory(folder);
        foreach (string file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        int headDim = config["hidden_size"]!.GetValue<int>() / config["num_attention_heads"]!.GetValue<int>();
        int quarter = headDim / 8;
        config["model_type"] = "qwen2_vl";
        config["architectures"] = new JsonArray("Qwen2VLForConditionalGeneration");
        config["rope_scaling"] = new JsonObject
        {
            ["type"] = "mrope",
            ["mrope_section"] = new JsonArray(quarter, (headDim / 2 - quarter) / 2, headDim / 2 - quarter - (headDim / 2 - quarter) / 2),
        };
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        return folder;
    }

    [Theory]
    [InlineData(BackendKind.Vulkan)]
    [InlineData(BackendKind.Cpu)]
    public void Text_only_equals_the_qwen2_reference(BackendKind backend)
    {
        string folder = Qwen2AsQwen2Vl();
        var reference = new ReferenceFile(Path.Combine(folder, "reference.json"));
        using var model = ModelLoader.Load(folder, new ModelOptions { Backend = backend, MaxContext = 128 });
        Assert.Equal("qwen2_vl", model.Config.Architecture);
        int vocab = model.Config.VocabSize;
        var state = model.CreateState();
        var logits = new float[reference.InputIds.Length * vocab];
        model.Forward(state, reference.InputIds, logits, allPositions: true);
        for (int position = 0; position < reference.InputIds.Length; position++)
        {
            var expected = reference.Logits[position];
            double tolerance = 1e-3 * Math.Max(1.0, expected.Max(v => Math.Abs((double)v)));
            double worst = Enumerable.Range(0, vocab).Max(i => Math.Abs(expected[i] - logits[position * vocab + i]));
            Assert.True(worst <= tolerance, $"position {position} differs by {worst:G4} (allowed {tolerance:G4})");
        }
        int[] greedy = GreedyDecoder.Continue(model, state, logits.AsSpan((reference.InputIds.Length - 1) * vocab),
            reference.GreedyNewTokens.Length, model.Config.EosTokenIds.ToHashSet());
        Assert.Equal(reference.GreedyNewTokens, greedy);
    }

    [Fact]
    public void A_vulkan_decode_step_is_one_submission()
    {
        using var model = ModelLoader.Load(Qwen2AsQwen2Vl(), new ModelOptions { MaxContext = 32 });
        var backend = Assert.IsType<Engine.Runtime.Vulkan.VulkanBackend>(model.Backend);
        var state = model.CreateState();
        var logits = new float[model.Config.VocabSize];
        model.Forward(state, [1, 2, 3], logits, allPositions: false);
        for (int step = 0; step < 3; step++)
        {
            backend.Recorder.ResetCounters();
            model.Forward(state, [5 + step], logits, allPositions: false);
            Assert.Equal(1, backend.Recorder.Submissions);
        }
    }
}
