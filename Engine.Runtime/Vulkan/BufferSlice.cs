namespace Engine.Runtime.Vulkan;

/// <summary>A byte range of a buffer, as one descriptor binds it.</summary>
internal readonly record struct BufferSlice(GpuBuffer Buffer, ulong Offset, ulong Size)
{
    public bool Overlaps(BufferSlice other) =>
        ReferenceEquals(Buffer, other.Buffer) && Offset < other.Offset + other.Size && other.Offset < Offset + Size;
}
