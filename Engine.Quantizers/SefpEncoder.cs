using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers;

/// <summary>
/// SEFP (<see cref="SefpFormat"/>), written as bit-planes. Round-to-nearest (the default, <c>--method rtn</c>): per
/// group the largest exponent E (|w| &lt; 2^(E+1) for the whole group), each magnitude rounded to the nearest multiple
/// of 2^(E+1-Bits). Multi-precision (<c>--method sefp</c>, OTARo's one-model-for-all-widths without its fine-tuning):
/// the exponent and each stored magnitude are chosen to minimise the squared error summed over every precision a
/// reader may take, m = 2..Bits, since a reader at m keeps only the top m bits (decoded at their interval's middle).
/// </summary>
public sealed class SefpEncoder : IWeightEncoder
{
    /// <summary>Exponents tried around the group's largest: one below clips the largest weight, one above halves the resolution.</summary>
    private static readonly int[] ExponentOffsets = [-1, 0, 1];

    public WeightType Type => WeightType.Sefp;

    /// <summary>Minimise the error summed over the precisions 2..Bits, not only at Bits.</summary>
    public bool MultiPrecision { get; init; }

    public string Method => MultiPrecision ? "sefp" : "rtn";

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters)
    {
        var info = new TensorInfo(name, [rows, columns], WeightType.Sefp, parameters);
        var layout = info.Layout;
        var data = new byte[layout.TotalBytes];
        int bits = parameters.Bits, group = parameters.GroupSize;
        foreach (float w in values)
        {
            if (!float.IsFinite(w)) throw new InvalidDataException($"{name}: weight {w} cannot be stored as SEFP");
        }
        var stream = Enumerable.Range(0, layout.StreamCount).Select(s => layout.StreamOffset(s)).ToArray();
        var source = values.ToArray();
        Parallel.For(0, rows, r =>
        {
            var row = source.AsSpan(r * columns, columns);
            var codes = new int[group];
            long planeRow = r * layout.RowBytes[1];
            for (int g0 = 0; g0 < columns; g0 += group)
            {
                var members = row.Slice(g0, Math.Min(group, columns - g0));
                int exponent = MultiPrecision ? BestGroup(members, bits, codes) : NearestGroup(members, bits, Largest(members), codes);
                // Groups below the smallest exponent byte (all |w| < 2^-126) are stored as zero groups.
                if (exponent < 1 - SefpFormat.ExponentBias) continue;
                data[stream[0] + r * layout.RowBytes[0] + g0 / group] = (byte)(exponent + SefpFormat.ExponentBias);
                for (int i = 0; i < members.Length; i++)
                {
                    int c = g0 + i;
                    if (members[i] < 0) BitField.Write(data.AsSpan((int)(stream[1] + planeRow)), c, 1, 1);
                    for (int k = 0; k < bits; k++)
                        BitField.Write(data.AsSpan((int)(stream[2 + k] + planeRow)), c, 1, codes[i] >> (bits - 1 - k));
                }
            }
        });
        return new EncodedTensor(info, data);
    }

    /// <summary>The exponent of the group's largest magnitude (int.MinValue for an all-zero group).</summary>
    private static int Largest(ReadOnlySpan<float> members)
    {
        float largest = 0;
        foreach (float w in members) largest = Math.Max(largest, Math.Abs(w));
        return largest == 0 ? int.MinValue : Math.ILogB(largest);
    }

    /// <summary>Round-to-nearest magnitudes on exponent <paramref name="exponent"/>, clipped to the largest code.</summary>
    private static int NearestGroup(ReadOnlySpan<float> members, int bits, int exponent, Span<int> codes)
    {
        if (exponent == int.MinValue) return exponent;
        int maxCode = (1 << bits) - 1;
        for (int i = 0; i < members.Length; i++)
            codes[i] = (int)Math.Min(maxCode, Math.Round(Math.ScaleB(Math.Abs((double)members[i]), bits - 1 - exponent), MidpointRounding.ToEven));
        return exponent;
    }

    /// <summary>The exponent (of <see cref="ExponentOffsets"/>) and codes with the least error summed over the precisions.</summary>
    private static int BestGroup(ReadOnlySpan<float> members, int bits, Span<int> codes)
    {
        int largest = Largest(members);
        if (largest == int.MinValue) return largest;
        Span<int> trial = stackalloc int[members.Length];
        double best = double.PositiveInfinity;
        int chosen = largest;
        foreach (int offset in ExponentOffsets)
        {
            int exponent = largest + offset;
            double error = 0;
            for (int i = 0; i < members.Length; i++)
            {
                (trial[i], double e) = BestCode(Math.Abs(members[i]), bits, exponent);
                error += e;
            }
            if (error < best)
            {
                best = error;
                chosen = exponent;
                trial.CopyTo(codes);
            }
        }
        return chosen;
    }

    /// <summary>
    /// The code of <paramref name="magnitude"/> with the least squared error summed over precisions 2..Bits. Candidates:
    /// the nearest code, and for each precision m that code moved into the interval of codes whose top m bits are the
    /// nearest reading at m (the nearest code's top bits can lie one interval off after rounding up).
    /// </summary>
    private static (int Code, double Error) BestCode(double magnitude, int bits, int exponent)
    {
        int maxCode = (1 << bits) - 1;
        int nearest = (int)Math.Min(maxCode, Math.Round(Math.ScaleB(magnitude, bits - 1 - exponent), MidpointRounding.ToEven));
        (int Code, double Error) best = (nearest, SummedError(magnitude, nearest, bits, exponent));
        for (int m = SefpFormat.MinBits; m < bits; m++)
        {
            int shift = bits - m;
            // The interval whose middle, (b + ½)·2^(E+1-m), is nearest to the magnitude.
            int interval = (int)Math.Clamp(Math.Floor(Math.ScaleB(magnitude, m - 1 - exponent)), 0, (1 << m) - 1);
            int code = Math.Clamp(nearest, interval << shift, ((interval + 1) << shift) - 1);
            if (code == best.Code) continue;
            double error = SummedError(magnitude, code, bits, exponent);
            if (error < best.Error) best = (code, error);
        }
        return best;
    }

    /// <summary>
    /// The squared error summed over precisions 2..Bits, unweighted: the coarse readings dominate it. Measured on
    /// tinyprose-14m (README), weighting each m by 4^(m-Bits) (relative to its own step) or 2^(m-Bits) kept m = 2 at
    /// 67.4 / 66.3 where the plain sum reaches 64.6, while m = 7 stayed within 0.01 of it either way.
    /// </summary>
    private static double SummedError(double magnitude, int code, int bits, int exponent)
    {
        double total = 0;
        for (int m = SefpFormat.MinBits; m <= bits; m++)
        {
            double middle = m < bits ? 0.5 : 0.0;
            double d = magnitude - Math.ScaleB((code >> (bits - m)) + middle, exponent + 1 - m);
            total += d * d;
        }
        return total;
    }
}
