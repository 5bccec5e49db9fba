using Engine.Formats;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// A weight matrix in its storage format in device-local memory, rows padded to <see cref="RowStride"/> weights.
/// Split into row chunks when it is larger than one storage-buffer binding may cover.
/// </summary>
internal sealed class VulkanWeightMatrix(int rows, int columns, int rowStride, WeightType type, IReadOnlyList<VulkanWeightMatrix.Chunk> chunks) : IWeightMatrix
{
    public readonly record struct Chunk(GpuBuffer Buffer, int FirstRow, int Rows);

    public int Rows { get; } = rows;
    public int Columns { get; } = columns;
    public int RowStride { get; } = rowStride;
    public WeightType Type { get; } = type;
    public IReadOnlyList<Chunk> Chunks { get; } = chunks;

    public long ByteSize => Chunks.Sum(c => (long)c.Buffer.Size);
}
