using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers;

/// <summary>
/// The closed form of the binary format: a plane's signs are sign(w), zero counted positive, and its scale is the
/// group's mean |w|, the least-squares scale for those signs (rounded to f16). A second plane codes, the same way,
/// the residual the first leaves with its stored scale. Padding columns take no part in the means.
/// </summary>
public sealed class BinaryEncoder : IWeightEncoder
{
    public WeightType Type => WeightType.Binary;

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters)
    {
        var info = new TensorInfo(name, [rows, columns], WeightType.Binary, parameters);
        var layout = info.Layout;
        var data = new byte[layout.TotalBytes];
        int groupSize = parameters.GroupSize, planes = parameters.Planes;
        var residual = new float[columns];
        for (int r = 0; r < rows; r++)
        {
            values.Slice(r * columns, columns).CopyTo(residual);
            var scales = data.AsSpan((int)(layout.StreamOffset(0) + r * layout.RowBytes[0]), (int)layout.RowBytes[0]);
            for (int plane = 0; plane < planes; plane++)
            {
                var signs = data.AsSpan((int)(layout.StreamOffset(1 + plane) + r * layout.RowBytes[1 + plane]), (int)layout.RowBytes[1 + plane]);
                for (int group = 0, start = 0; start < columns; group++, start += groupSize)
                {
                    var part = residual.AsSpan(start, Math.Min(groupSize, columns - start));
                    double sum = 0;
                    foreach (float w in part) sum += Math.Abs(w);
                    var scale = (Half)(sum / part.Length);
                    if (!Half.IsFinite(scale))
                        throw new InvalidDataException(
                            $"tensor '{name}': row {r}, group at column {start} has mean |w| {sum / part.Length}, not an f16 binary scale");
                    BinaryFormat.WriteScale(scales, group, plane, planes, scale);
                    for (int i = 0; i < part.Length; i++)
                    {
                        bool positive = part[i] >= 0;
                        BinaryFormat.WriteSign(signs, start + i, positive);
                        part[i] -= positive ? (float)scale : -(float)scale;
                    }
                }
            }
        }
        return new EncodedTensor(info, data);
    }
}
