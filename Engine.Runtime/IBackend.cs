using Engine.Formats;

namespace Engine.Runtime;

/// <summary>A float32 activation or parameter vector living on a backend; its length is its capacity in floats.</summary>
public interface ITensor
{
    int Length { get; }
}

/// <summary>Element-wise functions of <see cref="IBackend.Activate"/>.</summary>
public enum Activation
{
    /// <summary>x · sigmoid(x).</summary>
    Silu,
    /// <summary>x · Φ(x), the exact (erf) form.</summary>
    Gelu,
    /// <summary>The tanh approximation of GELU.</summary>
    GeluTanh,
    /// <summary>x · sigmoid(1.702 x) (CLIP).</summary>
    QuickGelu,
    Sigmoid,
    /// <summary>log(1 + eˣ), x itself above 20 as PyTorch does.</summary>
    Softplus,
    /// <summary>max(x, 0)² (RWKV channel mix).</summary>
    ReluSquared,
    Tanh,
    Exp,
}

/// <summary>Element-wise binary operators of <see cref="IBackend.Binary"/>.</summary>
public enum BinaryOp
{
    Add,
    Sub,
    Mul,
}

/// <summary>A weight matrix [Rows, Columns] kept in its storage format on a backend.</summary>
public interface IWeightMatrix
{
    int Rows { get; }
    int Columns { get; }
    WeightType Type { get; }
    FormatParameters Parameters { get; }

    /// <summary>Bytes of weight data one full pass over the matrix reads (padding included).</summary>
    long ByteSize { get; }
}

/// <summary>
/// The operations a model graph is written in, by concern (<see cref="IDeviceMemory"/>, <see cref="ICoreOps"/>,
/// <see cref="IRecurrentOps"/>, <see cref="IMoeOps"/>; each backend has one file per concern). The Vulkan backend
/// records them into command buffers submitted as they fill and waits when a result is read; the CPU reference
/// backend runs them at once. Sizes are passed explicitly so a
/// tensor allocated for the largest batch serves every smaller one.
/// </summary>
public interface IBackend : IDeviceMemory, ICoreOps, IRecurrentOps, IMoeOps, IDisposable
{
}
