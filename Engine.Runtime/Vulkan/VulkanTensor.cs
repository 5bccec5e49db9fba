namespace Engine.Runtime.Vulkan;

/// <summary>A float32 vector in device-local memory.</summary>
internal sealed class VulkanTensor(BufferSlice slice, int length) : ITensor
{
    public BufferSlice Slice { get; } = slice;

    public int Length { get; } = length;
}
