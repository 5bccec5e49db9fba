using Engine.Formats;

namespace Engine.Runtime;

/// <summary>
/// A vector living on a backend: an activation or parameter in float32, or a KV cache in float16 as well; its length
/// is its capacity in elements. Ops take float32 tensors except where their documentation says they take f16 ones.
/// </summary>
public interface ITensor
{
    int Length { get; }

    ElementType Element { get; }
}

/// <summary>How a tensor stores its elements (<see cref="IDeviceMemory.Allocate"/>).</summary>
public enum ElementType
{
    F32,
    /// <summary>
    /// IEEE half precision: every value written (by an op or a host write) is rounded to the nearest half, ties to even,
    /// the same on every backend, and reads back widened exactly. A KV cache in half the memory and bandwidth.
    /// </summary>
    F16,
}

public static class ElementTypes
{
    /// <summary>"f32" or "f16", as the command line and reports spell them.</summary>
    public static string Name(this ElementType element) => element.ToString().ToLowerInvariant();
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
