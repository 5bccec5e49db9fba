using System.Buffers.Binary;
using System.Numerics;

namespace Engine.Formats.Weights;

/// <summary>
/// Binary weights: a sign times its group's f16 scale, w = s1·b1 with b = ±1, or with a second residual sign plane
/// and its own scale, w = s1·b1 + s2·b2 (Planes = 2). Groups of GroupSize weights along a row, a power of two from
/// 32 to 256 (128 by default); Planes 1 (default) or 2.
/// <para>Streams, rows padded with zero weights to a multiple of GroupSize:</para>
/// <list type="number">
/// <item>0: per row, the scales: Planes f16 values per group, plane k of group g at f16 index g·Planes + k (a device
/// row is rounded up to whole words).</item>
/// <item>1 (and 2 with two planes): per row, the sign bits of plane 1 (plane 2): bit i of the row's bytes is weight
/// i, 1 meaning +1. One stream per plane, so both plane counts share the code that reads a plane.</item>
/// </list>
/// Bits per weight = Planes × (1 + 16 / GroupSize): 1.125 at g128 with one plane, 2.25 with two.
/// </summary>
public sealed class BinaryFormat : WeightFormat
{
    public const int DefaultGroupSize = 128;

    private BinaryFormat()
    {
    }

    public static BinaryFormat Instance { get; } = new();

    public override WeightType Type => WeightType.Binary;

    public override string Name => "binary";

    public override FormatParameters DefaultParameters => new(GroupSize: DefaultGroupSize, Planes: 1);

    public override void Validate(FormatParameters parameters)
    {
        if (parameters.GroupSize is < 32 or > 256 || !BitOperations.IsPow2(parameters.GroupSize))
            throw new InvalidDataException($"{Name}: group size {parameters.GroupSize} is not a power of two from 32 to 256");
        if (parameters.Planes is not (1 or 2))
            throw new InvalidDataException($"{Name}: {parameters.Planes} sign planes, the format stores 1 or 2");
        if (parameters.Bits != 0 || parameters.Rank != 0 || parameters.Reference is not null)
            throw new InvalidDataException($"{Name} takes only a group size and a plane count, got {parameters}");
    }

    public override int BlockSize(FormatParameters parameters) => parameters.GroupSize;

    public override int BlockBytes(FormatParameters parameters) => parameters.Planes * (2 + parameters.GroupSize / 8);

    public override MatrixLayout Layout(long rows, long columns, FormatParameters parameters)
    {
        Validate(parameters);
        long padded = RoundUp(columns, parameters.GroupSize);
        long scaleBytes = padded / parameters.GroupSize * parameters.Planes * 2;
        var rowBytes = new long[1 + parameters.Planes];
        rowBytes[0] = scaleBytes;
        for (int plane = 1; plane <= parameters.Planes; plane++) rowBytes[plane] = padded / 8;
        var deviceRowBytes = (long[])rowBytes.Clone();
        deviceRowBytes[0] = RoundUp(scaleBytes, 4);
        return new MatrixLayout(rows, columns, padded, rowBytes, deviceRowBytes, 0);
    }

    public override string ShaderTag(FormatParameters parameters) => Name;

    /// <summary>param[0]: log2 of the group size; param[1]: the plane count.</summary>
    public override void ShaderParameters(FormatParameters parameters, int precision, Span<uint> destination)
    {
        destination[0] = (uint)BitOperations.Log2((uint)parameters.GroupSize);
        destination[1] = (uint)parameters.Planes;
    }

    public override void Decode(TensorInfo info, ReadOnlySpan<byte> data, Span<float> destination, ITensorSource? shared)
    {
        var layout = info.Layout;
        int groupSize = info.Parameters.GroupSize, planes = info.Parameters.Planes;
        int columns = (int)layout.Columns;
        for (long r = 0; r < layout.Rows; r++)
        {
            var scales = layout.Row(data, 0, r);
            var row = destination.Slice((int)(r * columns), columns);
            row.Clear();
            for (int plane = 0; plane < planes; plane++)
            {
                var signs = layout.Row(data, 1 + plane, r);
                for (int group = 0, start = 0; start < columns; group++, start += groupSize)
                {
                    float scale = ReadScale(scales, group, plane, planes);
                    for (int c = start; c < Math.Min(start + groupSize, columns); c++)
                        row[c] += ReadSign(signs, c) ? scale : -scale;
                }
            }
        }
    }

    /// <summary>The scale of <paramref name="plane"/> (0-based) of group <paramref name="group"/> in a row of stream 0.</summary>
    public static float ReadScale(ReadOnlySpan<byte> scales, int group, int plane, int planes) =>
        (float)BinaryPrimitives.ReadHalfLittleEndian(scales[((group * planes + plane) * 2)..]);

    public static void WriteScale(Span<byte> scales, int group, int plane, int planes, Half scale) =>
        BinaryPrimitives.WriteHalfLittleEndian(scales[((group * planes + plane) * 2)..], scale);

    /// <summary>Whether column <paramref name="column"/> is +1 in a row of a sign stream.</summary>
    public static bool ReadSign(ReadOnlySpan<byte> signs, int column) => BitField.Read(signs, column, 1) != 0;

    public static void WriteSign(Span<byte> signs, int column, bool positive) => BitField.Write(signs, column, 1, positive ? 1 : 0);
}
