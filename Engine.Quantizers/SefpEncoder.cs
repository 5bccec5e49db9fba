using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers;

/// <summary>
/// SEFP: per group the largest exponent E (|w| &lt; 2^(E+1) for the whole group), then each magnitude rounded to
/// the nearest multiple of 2^(E+1-Bits) and written as bit-planes (<see cref="SefpFormat"/>).
/// </summary>
public sealed class SefpEncoder : IWeightEncoder
{
    public WeightType Type => WeightType.Sefp;

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters)
    {
        var info = new TensorInfo(name, [rows, columns], WeightType.Sefp, parameters);
        var layout = info.Layout;
        var data = new byte[layout.TotalBytes];
        int bits = parameters.Bits, group = parameters.GroupSize;
        int maxCode = (1 << bits) - 1;
        var stream = Enumerable.Range(0, layout.StreamCount).Select(s => layout.StreamOffset(s)).ToArray();
        for (int r = 0; r < rows; r++)
        {
            var row = values.Slice(r * columns, columns);
            for (int g0 = 0; g0 < columns; g0 += group)
            {
                var members = row.Slice(g0, Math.Min(group, columns - g0));
                float largest = 0;
                foreach (float w in members)
                {
                    if (!float.IsFinite(w)) throw new InvalidDataException($"{name}: weight {w} in row {r} cannot be stored as SEFP");
                    largest = Math.Max(largest, Math.Abs(w));
                }
                int exponent = largest == 0 ? int.MinValue : Math.ILogB(largest);
                // Groups below the smallest exponent byte (all |w| < 2^-126) are stored as zero groups.
                if (exponent < 1 - SefpFormat.ExponentBias) continue;
                data[stream[0] + r * layout.RowBytes[0] + g0 / group] = (byte)(exponent + SefpFormat.ExponentBias);
                for (int i = 0; i < members.Length; i++)
                {
                    int c = g0 + i;
                    int q = (int)Math.Min(maxCode, Math.Round(Math.ScaleB(Math.Abs((double)members[i]), bits - 1 - exponent), MidpointRounding.ToEven));
                    long planeRow = r * layout.RowBytes[1];
                    if (members[i] < 0) BitField.Write(data.AsSpan((int)(stream[1] + planeRow)), c, 1, 1);
                    for (int k = 0; k < bits; k++)
                        BitField.Write(data.AsSpan((int)(stream[2 + k] + planeRow)), c, 1, q >> (bits - 1 - k));
                }
            }
        }
        return new EncodedTensor(info, data);
    }
}
