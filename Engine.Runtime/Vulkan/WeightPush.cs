using Engine.Formats;

namespace Engine.Runtime.Vulkan;

/// <summary>The push constants of every weight op (mat-vec, mat-mat, embedding): mirrors `Push` in weights.glsl.</summary>
internal unsafe struct WeightPush
{
    public const int MaxStreams = 9;

    /// <summary>Weights, input, output, bias, auxiliary table.</summary>
    public const int Bindings = 5;

    /// <summary>Products (mat-vec, mat-mat, expert-indexed): <see cref="Bindings"/>, then the routing table and the norm weight.</summary>
    public const int ProductBindings = 7;

    /// <summary>Bits of <see cref="Fusion"/>: FUSE_* in weights.glsl.</summary>
    public const uint FuseNorm = 1, FuseSwiGlu = 2, FuseAccumulate = 4;

    public uint Rows;
    public uint Cols;
    public uint PaddedCols;
    public uint RowOffset;
    public uint HasBias;
    public uint Tokens;
    public uint OutStride;
    public fixed uint Param[4];
    public fixed uint StreamOffset[MaxStreams];
    public fixed uint StreamStride[MaxStreams];
    public uint ExpertRows;
    public uint Fusion;
    public float NormEps;

    /// <param name="inputColumns">Row length of the input: the matrix's columns, or its padded columns for a rotated input.</param>
    public static WeightPush For(VulkanWeightMatrix matrix, VulkanWeightMatrix.Chunk chunk, bool hasBias, int tokens, int outStride, int inputColumns)
    {
        var push = new WeightPush
        {
            Rows = (uint)chunk.Rows,
            Cols = (uint)inputColumns,
            PaddedCols = (uint)((matrix.Layout.PaddedColumns + 7) / 8 * 8),
            RowOffset = (uint)chunk.FirstRow,
            HasBias = hasBias ? 1u : 0u,
            Tokens = (uint)tokens,
            OutStride = (uint)outStride,
        };
        matrix.Info.Format.ShaderParameters(matrix.Parameters, matrix.Precision, new Span<uint>(push.Param, 4));
        for (int s = 0; s < chunk.StreamOffsets.Length; s++)
        {
            push.StreamOffset[s] = chunk.StreamOffsets[s];
            push.StreamStride[s] = (uint)(matrix.Layout.DeviceRowBytes[s] / 4);
        }
        return push;
    }
}
