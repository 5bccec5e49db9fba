using System.Buffers.Binary;
using System.Numerics;

namespace Engine.Formats.Weights;

/// <summary>
/// Group integer weights, q8/q4/q3/q2 (one class; the width comes with the format id). Each group of GroupSize
/// weights along a row (32, 64 or 128; 32 by default) has an f16 scale and an f16 minimum, and a weight is an
/// unsigned code q in [0, 2^bits − 1] on the group's asymmetric grid:
/// <code>w = fma(q, scale, min)   (float32, one rounding; the shader computes the same)</code>
/// The offset form, rather than scale·(q − zero), keeps a narrow group far from zero representable: its zero
/// point −min/scale can overflow f16, its minimum cannot.
/// <para>Streams, rows padded with zero weights to a multiple of GroupSize:</para>
/// <list type="number">
/// <item>0: per row, a 4-byte header per group: f16 scale, then f16 min (one little-endian word, scale in the low half).</item>
/// <item>1: per row, the codes, bits × GroupSize / 8 bytes per group, in blocks of 32 weights = `bits` little-endian
/// words. q8, q4, q2: code i of the row is bits [i·bits, (i+1)·bits) of the row's bytes. q3: a block's words 0-1
/// hold the low two bits of its 32 codes as q2 does, word 2 bit i holds code i's third bit, so a shader gets 8
/// codes from two whole words.</item>
/// </list>
/// Bits per weight = bits + 32 / GroupSize (q4 at g32: 5.0).
/// </summary>
public sealed class GroupIntFormat : WeightFormat
{
    public const int DefaultGroupSize = 32;

    /// <summary>f16 scale and f16 minimum.</summary>
    private const int HeaderBytes = 4;

    private GroupIntFormat(WeightType type, int bits)
    {
        Type = type;
        Bits = bits;
    }

    public static GroupIntFormat Q8 { get; } = new(WeightType.Q8, 8);
    public static GroupIntFormat Q4 { get; } = new(WeightType.Q4, 4);
    public static GroupIntFormat Q3 { get; } = new(WeightType.Q3, 3);
    public static GroupIntFormat Q2 { get; } = new(WeightType.Q2, 2);

    public override WeightType Type { get; }

    /// <summary>Bits per code.</summary>
    public int Bits { get; }

    /// <summary>The largest code, 2^bits − 1.</summary>
    public int MaxCode => (1 << Bits) - 1;

    public override string Name => $"q{Bits}";

    public override FormatParameters DefaultParameters => new(GroupSize: DefaultGroupSize);

    public override void Validate(FormatParameters parameters)
    {
        if (parameters.GroupSize is not (32 or 64 or 128))
            throw new InvalidDataException($"{Name}: group size {parameters.GroupSize} is not one of 32, 64, 128");
        if (parameters.Bits != 0 && parameters.Bits != Bits)
            throw new InvalidDataException($"{Name}: parameters say {parameters.Bits} bits, the format stores {Bits}");
        if (parameters.Planes != 0 || parameters.Rank != 0 || parameters.Reference is not null)
            throw new InvalidDataException($"{Name} takes only a group size, got {parameters}");
    }

    public override int BlockSize(FormatParameters parameters) => parameters.GroupSize;

    public override int BlockBytes(FormatParameters parameters) => HeaderBytes + Bits * parameters.GroupSize / 8;

    public override MatrixLayout Layout(long rows, long columns, FormatParameters parameters)
    {
        Validate(parameters);
        long padded = RoundUp(columns, parameters.GroupSize);
        return MatrixLayout.Packed(rows, columns, padded, [padded / parameters.GroupSize * HeaderBytes, padded / 8 * Bits]);
    }

    public override string ShaderTag(FormatParameters parameters) => Name;

    /// <summary>param[0]: log2 of the group size (the shader finds a column's group with a shift).</summary>
    public override void ShaderParameters(FormatParameters parameters, int precision, Span<uint> destination) =>
        destination[0] = (uint)BitOperations.Log2((uint)parameters.GroupSize);

    public override void Decode(TensorInfo info, ReadOnlySpan<byte> data, Span<float> destination, ITensorSource? shared)
    {
        var layout = info.Layout;
        int groupSize = info.Parameters.GroupSize;
        int columns = (int)layout.Columns;
        for (long r = 0; r < layout.Rows; r++)
        {
            var headers = layout.Row(data, 0, r);
            var codes = layout.Row(data, 1, r);
            var row = destination.Slice((int)(r * columns), columns);
            for (int group = 0, start = 0; start < columns; group++, start += groupSize)
            {
                var (scale, min) = ReadHeader(headers, group);
                for (int c = start; c < Math.Min(start + groupSize, columns); c++)
                    row[c] = MathF.FusedMultiplyAdd(ReadCode(codes, c), scale, min);
            }
        }
    }

    /// <summary>The scale and minimum of group <paramref name="group"/> in a row of stream 0.</summary>
    public static (float Scale, float Min) ReadHeader(ReadOnlySpan<byte> headers, int group) =>
        ((float)BinaryPrimitives.ReadHalfLittleEndian(headers[(group * HeaderBytes)..]),
         (float)BinaryPrimitives.ReadHalfLittleEndian(headers[(group * HeaderBytes + 2)..]));

    public static void WriteHeader(Span<byte> headers, int group, Half scale, Half min)
    {
        BinaryPrimitives.WriteHalfLittleEndian(headers[(group * HeaderBytes)..], scale);
        BinaryPrimitives.WriteHalfLittleEndian(headers[(group * HeaderBytes + 2)..], min);
    }

    /// <summary>The code of column <paramref name="column"/> in a row of stream 1.</summary>
    public int ReadCode(ReadOnlySpan<byte> codes, int column)
    {
        var (low, third) = CodeBits(column);
        return Bits == 3 ? BitField.Read(codes, low, 2) | BitField.Read(codes, third, 1) << 2 : BitField.Read(codes, low, Bits);
    }

    /// <summary>Stores <paramref name="code"/> (0 .. <see cref="MaxCode"/>) for column <paramref name="column"/> in a row of stream 1.</summary>
    public void WriteCode(Span<byte> codes, int column, int code)
    {
        var (low, third) = CodeBits(column);
        if (Bits == 3)
        {
            BitField.Write(codes, low, 2, code & 3);
            BitField.Write(codes, third, 1, code >> 2);
        }
        else
            BitField.Write(codes, low, Bits, code);
    }

    /// <summary>Bit positions of a code in its row: the code (q3: its low two bits), and q3's third bit.</summary>
    private (long Low, long Third) CodeBits(int column) =>
        Bits == 3 ? (column / 32 * 96L + column % 32 * 2, column / 32 * 96L + 64 + column % 32) : ((long)column * Bits, -1);
}
