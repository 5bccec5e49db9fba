namespace Engine.Formats;

/// <summary>How RoPE pairs the dimensions of a head.</summary>
public enum RopeLayout
{
    /// <summary>Hugging Face: dimension i pairs with i + headDim/2 (rotate_half).</summary>
    RotateHalf,

    /// <summary>llama2.c / Meta original: dimension 2i pairs with 2i+1.</summary>
    Interleaved,
}

/// <summary>
/// Hyper-parameters of a model, read from Hugging Face <c>config.json</c> (plus <c>generation_config.json</c>) or
/// from a llama2.c header. Architecture-specific extras stay in <see cref="Raw"/>.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The Hugging Face <c>model_type</c> (<c>llama</c>, <c>qwen2</c>, …), the key of the architecture registry.</summary>
    public required string Architecture { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int LayerCount { get; init; }
    public required int HeadCount { get; init; }
    public required int KvHeadCount { get; init; }
    public required int HeadDim { get; init; }
    public int MaxPositions { get; init; } = 2048;
    public double RmsNormEps { get; init; } = 1e-5;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeLayout RopeLayout { get; init; } = RopeLayout.RotateHalf;
    public bool TieWordEmbeddings { get; init; }
    public int? BosTokenId { get; init; }

    /// <summary>End-of-sequence ids from generation_config.json, else config.json; empty when the model has none.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>
    /// Per layer, the sliding attention window: a query at position p sees positions p - W + 1 .. p (W positions, its
    /// own included); 0 is full causal attention. Empty when no layer has a window. From <c>sliding_window</c> (Mistral,
    /// Mixtral: every layer), Qwen2's <c>use_sliding_window</c> / <c>max_window_layers</c>, or <c>layer_types</c>.
    /// </summary>
    public IReadOnlyList<int> SlidingWindows { get; init; } = [];

    /// <summary>The sliding window of <paramref name="layer"/> (0: unlimited), as <see cref="SlidingWindows"/>.</summary>
    public int SlidingWindow(int layer)
    {
        if (layer < 0 || layer >= LayerCount) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"the model has {LayerCount} layers");
        return SlidingWindows.Count == 0 ? 0 : SlidingWindows[layer];
    }

    /// <summary>The parsed config.json, for architecture-specific fields; null for llama2.c files.</summary>
    public System.Text.Json.JsonElement? Raw { get; init; }
}
