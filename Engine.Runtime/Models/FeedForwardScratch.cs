namespace Engine.Runtime.Models;

/// <summary>Activations of the feed-forward blocks, allocated once for the largest batch and the widest block.</summary>
internal sealed class FeedForwardScratch
{
    public FeedForwardScratch(IBackend backend, int maxBatch, int dim, IReadOnlyList<FeedForward> blocks)
    {
        int width = blocks.Max(b => b.Width);
        Dim = dim;
        Normed = backend.Allocate(maxBatch * dim);
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

    public int Dim { get; }

    /// <summary>[B, D]: the normalised input, and the output, of a block that fuses neither.</summary>
    public ITensor Normed { get; }

    public ITensor Gate { get; }
    public ITensor Up { get; }

    // Mixture-of-experts models only.
    public ITensor? RouterLogits { get; }
    public ITensor? Routing { get; }
    public ITensor? ExpertOutputs { get; }
    public ITensor? Shared { get; }
    public ITensor? SharedGate { get; }
}
