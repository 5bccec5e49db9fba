using System.Numerics;

namespace Engine.Runtime;

/// <summary>Scratch tensors that grow with the batch: allocated on first use, regrown to a power of two when too small.</summary>
internal static class ScratchTensor
{
    /// <summary>A tensor of at least <paramref name="length"/> floats, kept in <paramref name="tensor"/> for the next call.</summary>
    public static ITensor Ensure(IBackend backend, ref ITensor? tensor, long length)
    {
        if (tensor is null || tensor.Length < length)
        {
            long capacity = (long)BitOperations.RoundUpToPowerOf2((ulong)Math.Max(length, 1));
            if (capacity > int.MaxValue) capacity = length;
            tensor = backend.Allocate(checked((int)capacity));
        }
        return tensor;
    }
}
