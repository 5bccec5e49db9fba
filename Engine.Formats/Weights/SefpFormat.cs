namespace Engine.Formats.Weights;

/// <summary>
/// Shared-exponent float (SEFP, from OTARo): groups of GroupSize (16 or 32) weights along a row share an 8-bit
/// exponent E (the largest in the group, stored biased by 127; 0 marks an all-zero group); each weight keeps a sign
/// and a Bits-bit magnitude q (2..7, default 7) with |w| ≈ q·2^(E+1-Bits), rounded to nearest when encoded.
/// <para>The magnitude is stored as bit-planes, most significant first, each plane a stream of its own, so a
/// run-time precision m ≤ Bits reads only the exponents, the sign plane and the first m planes: lower precision
/// reads proportionally fewer bytes, and the same file serves every precision. At m &lt; Bits the top m bits are a
/// truncation, decoded at the middle of their interval: |w| ≈ (q_m + ½)·2^(E+1-m).</para>
/// <para>Streams, rows padded with zeros to a multiple of 32 weights: 0 = exponents (one byte per group, a row
/// rounded up to 4 bytes); 1 = sign bits (bit i of a row's bytes is weight i, 1 = negative); 2 + k = bit
/// (Bits - 1 - k) of every magnitude.</para>
/// Bits per weight = 1 + Bits + 8 / GroupSize (8.25 at 7 bits, group 32); read at precision m: 1 + m + 8 / GroupSize.
/// </summary>
public sealed class SefpFormat : WeightFormat
{
    public const int MinBits = 2;
    public const int MaxBits = 7;
    public const int ExponentBias = 127;

    private SefpFormat()
    {
    }

    public static SefpFormat Instance { get; } = new();

    public override WeightType Type => WeightType.Sefp;

    public override string Name => "sefp";

    public override FormatParameters DefaultParameters => new(GroupSize: 32, Bits: MaxBits);

    public override void Validate(FormatParameters parameters)
    {
        if (parameters.GroupSize is not (16 or 32))
            throw new InvalidDataException($"{Name}: group size {parameters.GroupSize}, the format shares an exponent over 16 or 32 weights");
        if (parameters.Bits is < MinBits or > MaxBits)
            throw new InvalidDataException($"{Name}: {parameters.Bits} mantissa bits, the format stores {MinBits} to {MaxBits}");
        if (parameters.Planes != 0 || parameters.Rank != 0 || parameters.Reference is not null)
            throw new InvalidDataException($"{Name} takes only a group size and mantissa bits, got {parameters}");
    }

    public override int BlockSize(FormatParameters parameters) => parameters.GroupSize;

    public override int BlockBytes(FormatParameters parameters) => parameters.GroupSize * (1 + parameters.Bits) / 8 + 1;

    public override MatrixLayout Layout(long rows, long columns, FormatParameters parameters)
    {
        Validate(parameters);
        long padded = RoundUp(columns, 32);
        long exponentBytes = RoundUp(padded / parameters.GroupSize, 4);
        var rowBytes = new long[2 + parameters.Bits];
        rowBytes[0] = exponentBytes;
        for (int s = 1; s < rowBytes.Length; s++) rowBytes[s] = padded / 8;
        return MatrixLayout.Packed(rows, columns, padded, rowBytes);
    }

    public override int EffectivePrecision(FormatParameters parameters, int requested) =>
        requested == 0 ? parameters.Bits : Math.Min(requested, parameters.Bits);

    public override long BytesRead(MatrixLayout layout, FormatParameters parameters, int precision) =>
        layout.Rows * (layout.RowBytes[0] + (1 + Precision(parameters, precision)) * layout.RowBytes[1]);

    public override string ShaderTag(FormatParameters parameters) => Name;

    public override void ShaderParameters(FormatParameters parameters, int precision, Span<uint> destination)
    {
        destination[0] = (uint)parameters.GroupSize;
        destination[1] = (uint)Precision(parameters, precision);
        destination[2] = (uint)parameters.Bits;
    }

    public override void Decode(TensorInfo info, ReadOnlySpan<byte> data, Span<float> destination, ITensorSource? shared) =>
        Decode(info, data, destination, shared, info.Parameters.Bits);

    public override void Decode(TensorInfo info, ReadOnlySpan<byte> data, Span<float> destination, ITensorSource? shared, int precision)
    {
        var p = info.Parameters;
        var layout = info.Layout;
        int m = Precision(p, precision);
        double middle = m < p.Bits ? 0.5 : 0.0;
        int columns = (int)info.Columns;
        long planeBytes = layout.RowBytes[1];
        var planeStarts = Enumerable.Range(0, m).Select(k => layout.StreamOffset(2 + k)).ToArray();
        for (long r = 0; r < info.Rows; r++)
        {
            var exponents = layout.Row(data, 0, r);
            var signs = layout.Row(data, 1, r);
            var output = destination.Slice((int)(r * columns), columns);
            for (int c = 0; c < columns; c++)
            {
                int exponent = exponents[c / p.GroupSize];
                if (exponent == 0)
                {
                    output[c] = 0;
                    continue;
                }
                int q = 0;
                long byteInRow = r * planeBytes + (c >> 3);
                for (int k = 0; k < m; k++) q = (q << 1) | ((data[(int)(planeStarts[k] + byteInRow)] >> (c & 7)) & 1);
                double magnitude = Math.ScaleB(q + middle, exponent - ExponentBias + 1 - m);
                output[c] = (float)(BitField.Read(signs, c, 1) == 1 ? -magnitude : magnitude);
            }
        }
    }

    private static int Precision(FormatParameters parameters, int precision) =>
        precision == 0 ? parameters.Bits : Math.Clamp(precision, MinBits, parameters.Bits);
}
