using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// A decoder layer's feed-forward block, output = FFN(input) over rows of width D: the dense SwiGLU of
/// <see cref="SwiGluFeedForward"/> or the mixture of experts of <see cref="MoeFeedForward"/>. Which one a layer has
/// comes from the config; a router tensor in a layer the config makes dense is an error.
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

    /// <summary>The residual step of a decoder layer: x += FFN(RMSNorm(x) · <paramref name="norm"/>).</summary>
    public virtual void AddTo(IBackend backend, ITensor x, ITensor norm, float eps, int tokens, FeedForwardScratch scratch)
    {
        backend.RmsNorm(x, norm, scratch.Normed, tokens, scratch.Dim, eps);
        Forward(backend, scratch.Normed, scratch.Normed, tokens, scratch);
        backend.Add(x, scratch.Normed, x, tokens * scratch.Dim);
    }

    /// <summary>The block of layer <paramref name="layer"/>: experts where the config makes the layer sparse, else dense SwiGLU.</summary>
    public static FeedForward Load(ModelConfig config, WeightLoader loader, int layer)
    {
        string prefix = $"model.layers.{layer}.";
        if (MoeFeedForward.IsSparseLayer(config, layer)) return MoeFeedForward.Load(config, loader, prefix);
        if (loader.Has(prefix + MoeFeedForward.RouterPrefix(config) + "gate.weight"))
            throw new InvalidDataException($"layer {layer}: it has a router tensor, but the config makes it a dense layer");
        return SwiGluFeedForward.Load(loader, prefix + "mlp.", config.IntermediateSize, config.HiddenSize);
    }
}
