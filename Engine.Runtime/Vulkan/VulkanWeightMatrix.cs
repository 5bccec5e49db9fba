using Engine.Formats;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// A weight matrix in its storage format in device-local memory: each row chunk is one buffer holding the
/// format's streams for its rows (<see cref="MatrixLayout"/>). Split into row chunks when it is larger than one
/// storage-buffer binding may cover.
/// </summary>
internal sealed class VulkanWeightMatrix(TensorInfo info, MatrixLayout layout, IReadOnlyList<VulkanWeightMatrix.Chunk> chunks, Func<int> requestedPrecision) : IWeightMatrix
{
    /// <summary>Rows [FirstRow, FirstRow + Rows) with stream s starting at word StreamOffsets[s] of Buffer.</summary>
    public sealed record Chunk(GpuBuffer Buffer, int FirstRow, int Rows, uint[] StreamOffsets);

    /// <summary>
    /// The Hadamard rotations a format stores the matrix under (PCDVQ): y = S_o·H·(W'·(H·S_i·x)), with the sign
    /// vectors on the device and the block sizes of the input (padded columns) and output (rows) transforms.
    /// </summary>
    public sealed record Rotation(VulkanTensor InputSigns, int InputBlock, VulkanTensor OutputSigns, int OutputBlock);

    /// <summary>The format's table bound at binding 4 (the PCDVQ codebook), if it has one.</summary>
    public BufferSlice? Aux { get; init; }

    public Rotation? Rotated { get; init; }

    public TensorInfo Info { get; } = info;
    public MatrixLayout Layout { get; } = layout;
    public int Rows => (int)Layout.Rows;
    public int Columns => (int)Layout.Columns;
    public WeightType Type => Info.Type;
    public FormatParameters Parameters => Info.Parameters;
    public IReadOnlyList<Chunk> Chunks { get; } = chunks;

    /// <summary>The precision the shaders read this matrix at now (the backend's run-time precision, clamped by the format).</summary>
    public int Precision => Info.Format.EffectivePrecision(Parameters, requestedPrecision());

    public long ByteSize => Info.Format.BytesRead(Layout, Parameters, Precision);
}
