using Engine.Runtime;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// The dispatches one decode step records on Vulkan, exactly, per architecture: the fused decode graph is a design
/// property (a Llama layer is at most 8), so a change that adds a dispatch shows up here.
/// </summary>
public sealed class DispatchCountTests
{
    /// <summary>
    /// Dispatches per layer and outside the layers of one decoded token, and how many fewer layer 0 has (RWKV-7's
    /// first layer has no value residual).
    /// </summary>
    private static readonly Dictionary<string, (int PerLayer, int Fixed, int FirstLayerFewer)> Expected = new()
    {
        // Llama family: qkv (norm folded in), rope + KV store, attention, o (+ residual), gate/up (norm, SwiGLU), down
        // (+ residual); outside: the embedding and the head (final norm folded in).
        ["fixtures/hf-tiny/llama"] = (6, 2, 0),
        ["fixtures/hf-tiny/qwen2"] = (6, 2, 0),
        ["models/tinyprose-14m"] = (6, 2, 0),
        ["fixtures/hf-tiny/llava"] = (6, 2, 0),
        // Mixture of experts: the attention's 4, then norm, router, routing, expert gate, up, SwiGLU, down, combine (+ residual).
        ["fixtures/hf-tiny/mixtral"] = (12, 2, 0),
        ["fixtures/hf-tiny/qwen3_moe"] = (12, 2, 0),
        ["fixtures/hf-tiny/mamba"] = (9, 2, 0),
        ["fixtures/hf-tiny/mamba2"] = (7, 2, 0),
        // RWKV: token shift and its mixes in one op, output products accumulating into the residual (before: 33, 57,
        // 67 per layer); outside: embedding, first norm, copy of the row, final LayerNorm, head.
        ["fixtures/hf-tiny/rwkv4"] = (18, 5, 0),
        ["fixtures/rwkv/rwkv6"] = (30, 5, 0),
        ["fixtures/rwkv/rwkv7"] = (42, 5, 4),
    };

    public static TheoryData<string> Models() => [.. Expected.Keys];

    [Theory]
    [MemberData(nameof(Models))]
    public void A_decode_step_records_the_expected_dispatches(string folder)
    {
        using var model = ModelLoader.Load(TestPaths.Shared(folder.Split('/')), new ModelOptions { MaxContext = 32 });
        var backend = Assert.IsType<Engine.Runtime.Vulkan.VulkanBackend>(model.Backend);
        var state = model.CreateState();
        var logits = new float[model.Config.VocabSize];
        model.Forward(state, [1, 2, 3], logits, allPositions: false);
        backend.Recorder.ResetCounters();
        model.Forward(state, [4], logits, allPositions: false);
        var (perLayer, fixedCount, firstLayerFewer) = Expected[folder];
        Assert.Equal(perLayer * model.Config.LayerCount + fixedCount - firstLayerFewer, backend.Recorder.DispatchCount);
    }
}
