namespace Engine.Runtime;

public enum BackendKind
{
    Vulkan,
    Cpu,
}

/// <summary>How to load and run a model.</summary>
public sealed record ModelOptions
{
    public BackendKind Backend { get; init; } = BackendKind.Vulkan;

    /// <summary>Vulkan device index; null picks ENGINE_DEVICE, else the best device.</summary>
    public int? DeviceIndex { get; init; }

    /// <summary>Context length cap; null means the model's own maximum (at most <see cref="DefaultMaxContext"/> for attention models).</summary>
    public int? MaxContext { get; init; }

    /// <summary>Tokens processed per prompt batch (activations are allocated for this many).</summary>
    public int MaxBatch { get; init; } = 512;

    /// <summary>Mantissa bits read from SEFP weights (2..7; 0 = all stored): <see cref="IBackend.RuntimePrecision"/>.</summary>
    public int SefpBits { get; init; }

    /// <summary>
    /// Joins matrices that read one input into one upload (q/k/v; gate/up), so each runs as one product. Off for
    /// calibration, which must see every matrix under its own tensor name.
    /// </summary>
    public bool JoinMatrices { get; init; } = true;

    /// <summary>
    /// Element type of an attention model's KV cache: f16 (llama.cpp's default) halves its memory and the bandwidth
    /// attention reads; f32 keeps keys and values as computed. Recurrent models have no KV cache.
    /// </summary>
    public ElementType CacheType { get; init; } = ElementType.F16;

    public const int DefaultMaxContext = 4096;

    /// <summary>
    /// The context cap of recurrent models (Mamba, RWKV) when none is asked for: their state does not grow with the
    /// context, so only the position counter bounds it.
    /// </summary>
    public const int RecurrentMaxContext = 1 << 30;
}
