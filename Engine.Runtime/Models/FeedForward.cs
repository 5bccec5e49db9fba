using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// A decoder layer's feed-forward block, output = FFN(input) over rows of width D: the dense SwiGLU of
/// <see cref="SwiGluFeedForward"/> or the mixture of experts of <see cref="MoeFeedForward"/>. Which one a layer has
/// comes from its tensors (a router means experts), checked against what the config says.
/// </summary>
internal abstract class FeedForward
{
    /// <summary>Floats per token of the gate/up activations (<see cref="FeedForwardScratch.Gate"/>).</summary>
    public abstract int Width { get; }

    /// <summary>Weight bytes one decoded token reads (the chosen experts' share of their stacks).</summary>
    public abstract long BytesPerToken { get; }

    /// <summary>Every matrix the block holds, for the model's list of weight formats.</summary>
    public abstract IEnumerable<IWeightMatrix> Matrices { get; }

    /// <summary>Runs the block on <paramref name="tokens"/> rows of <paramref name="input"/>; output may be input.</summary>
    public abstract void Forward(IBackend backend, ITensor input, ITensor output, int tokens, FeedForwardScratch scratch);

    /// <summary>The block of layer <paramref name="layer"/>: experts when the layer has a router, else dense SwiGLU.</summary>
    public static FeedForward Load(ModelConfig config, ITensorSource tensors, WeightLoader loader, int layer)
    {
        string prefix = $"model.layers.{layer}.";
        bool sparse = MoeFeedForward.IsSparseLayer(config, layer);
        var moe = MoeFeedForward.TryLoad(config, tensors, loader, prefix);
        if ((moe is not null) != sparse)
            throw new InvalidDataException(sparse
                ? $"layer {layer}: the config makes it a mixture of experts, but it has no router tensor ('{prefix}mlp.gate.weight' or '{prefix}block_sparse_moe.gate.weight')"
                : $"layer {layer}: it has a router tensor, but the config makes it a dense layer");
        return (FeedForward?)moe ?? SwiGluFeedForward.Load(loader, prefix + "mlp.", config.IntermediateSize, config.HiddenSize);
    }
}

/// <summary>down(silu(gate · x) ⊙ (up · x)).</summary>
internal sealed class SwiGluFeedForward(IWeightMatrix gate, IWeightMatrix up, IWeightMatrix down) : FeedForward
{
    public static SwiGluFeedForward Load(WeightLoader loader, string prefix, int hidden, int dim) => new(
        loader.Matrix(prefix + "gate_proj.weight", hidden, dim),
        loader.Matrix(prefix + "up_proj.weight", hidden, dim),
        loader.Matrix(prefix + "down_proj.weight", dim, hidden));

    public override int Width => gate.Rows;

    public override long BytesPerToken => gate.ByteSize + up.ByteSize + down.ByteSize;

    public override IEnumerable<IWeightMatrix> Matrices => [gate, up, down];

    public override void Forward(IBackend backend, ITensor input, ITensor output, int tokens, FeedForwardScratch scratch)
    {
        backend.Linear(gate, null, input, scratch.Gate, tokens);
        backend.Linear(up, null, input, scratch.Up, tokens);
        backend.SwiGlu(scratch.Gate, scratch.Up, scratch.Gate, tokens * gate.Rows);
        backend.Linear(down, null, scratch.Gate, output, tokens);
    }
}

/// <summary>Activations of the feed-forward blocks, allocated once for the largest batch and the widest block.</summary>
internal sealed class FeedForwardScratch
{
    public FeedForwardScratch(IBackend backend, int maxBatch, int dim, IReadOnlyList<FeedForward> blocks)
    {
        int width = blocks.Max(b => b.Width);
        Gate = backend.Allocate(maxBatch * width);
        Up = backend.Allocate(maxBatch * width);
        var moe = blocks.OfType<MoeFeedForward>().ToArray();
        if (moe.Length == 0) return;
        int experts = moe.Max(b => b.ExpertCount), k = moe.Max(b => b.ExpertsPerToken);
        RouterLogits = backend.Allocate(maxBatch * experts);
        Routing = backend.Allocate(MoeRouting.Length(maxBatch, k, experts));
        ExpertOutputs = backend.Allocate(maxBatch * k * dim);
        Shared = backend.Allocate(maxBatch * dim);
        SharedGate = backend.Allocate(maxBatch);
    }

    public ITensor Gate { get; }
    public ITensor Up { get; }

    // Mixture-of-experts models only.
    public ITensor? RouterLogits { get; }
    public ITensor? Routing { get; }
    public ITensor? ExpertOutputs { get; }
    public ITensor? Shared { get; }
    public ITensor? SharedGate { get; }
}
