namespace Engine.Runtime.Vulkan;

/// <summary>A vector in device-local memory: float32, or f16 with two halves per 32-bit word (half.glsl).</summary>
internal sealed class VulkanTensor(BufferSlice slice, int length, ElementType element = ElementType.F32) : ITensor
{
    public BufferSlice Slice { get; } = slice;

    public int Length { get; } = length;

    public ElementType Element { get; } = element;

    /// <summary>Bytes of one element.</summary>
    public int ElementBytes => Element == ElementType.F16 ? sizeof(ushort) : sizeof(float);
}
