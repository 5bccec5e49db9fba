namespace Engine.Runtime;

/// <summary>Which ops take which <see cref="ElementType"/>s, shared by the backends so that they refuse alike.</summary>
internal static class ElementChecks
{
    /// <summary>A tensor an op reads or writes as float32.</summary>
    public static void F32(ITensor tensor)
    {
        if (tensor.Element != ElementType.F32)
            throw new ArgumentException($"an {tensor.Element.Name()} tensor given to an op that takes float32 ones (f16 tensors are KV caches: RopeKv, Attention and CopyRows' destination take them)");
    }

    /// <summary>The element type of a KV cache, whose keys and values share one.</summary>
    public static ElementType Cache(ITensor keys, ITensor values) =>
        keys.Element == values.Element
            ? keys.Element
            : throw new ArgumentException($"keys in {keys.Element.Name()} but values in {values.Element.Name()}: a KV cache has one element type");

    /// <summary>
    /// <see cref="ICoreOps.CopyRows"/>: a float32 source; into an f16 destination, whole pairs of halves (a device
    /// stores two per 32-bit word, and two invocations must not write one word).
    /// </summary>
    public static void CopyRows(ITensor source, ITensor destination, int destinationOffset, int destinationStride, int width)
    {
        F32(source);
        if (destination.Element == ElementType.F16 && ((destinationOffset | destinationStride | width) & 1) != 0)
            throw new ArgumentException($"copying rows of {width} at offset {destinationOffset}, stride {destinationStride}, into an f16 tensor: it takes even widths, offsets and strides");
    }
}
