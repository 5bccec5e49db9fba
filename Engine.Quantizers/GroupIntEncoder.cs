using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers;

/// <summary>
/// Round to nearest for the group integer formats, asymmetric min-max per group. The f16 minimum is rounded down
/// and the f16 scale rounded up until the grid reaches the group's maximum, and the codes are chosen against those
/// stored values, so every weight decodes within scale / 2 of itself (plus the float32 rounding of the decode).
/// A group of equal values gets scale 0 (or the smallest that reaches it) and decodes to its minimum.
/// </summary>
public sealed class GroupIntEncoder(GroupIntFormat format) : IWeightEncoder
{
    public WeightType Type => format.Type;

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters)
    {
        var info = new TensorInfo(name, [rows, columns], format.Type, parameters);
        var layout = info.Layout;
        var data = new byte[layout.TotalBytes];
        int groupSize = parameters.GroupSize;
        for (int r = 0; r < rows; r++)
        {
            var headers = data.AsSpan((int)(layout.StreamOffset(0) + r * layout.RowBytes[0]), (int)layout.RowBytes[0]);
            var codes = data.AsSpan((int)(layout.StreamOffset(1) + r * layout.RowBytes[1]), (int)layout.RowBytes[1]);
            var row = values.Slice(r * columns, columns);
            for (int group = 0, start = 0; start < columns; group++, start += groupSize)
            {
                var weights = row[start..Math.Min(start + groupSize, columns)];
                var (scale, min) = Grid(format, weights, name, r, start);
                GroupIntFormat.WriteHeader(headers, group, scale, min);
                for (int i = 0; i < weights.Length; i++) format.WriteCode(codes, start + i, Code(format, weights[i], scale, min));
            }
        }
        return new EncodedTensor(info, data);
    }

    /// <summary>The nearest code of <paramref name="weight"/> on a group's stored grid.</summary>
    internal static int Code(GroupIntFormat format, float weight, Half scale, Half min)
    {
        double step = (double)scale;
        return step == 0 ? 0 : (int)Math.Clamp(Math.Round((weight - (double)min) / step), 0, format.MaxCode);
    }

    /// <summary>The stored scale and minimum of a group: the smallest f16 grid from below its minimum that covers its maximum.</summary>
    internal static (Half Scale, Half Min) Grid(GroupIntFormat format, ReadOnlySpan<float> weights, string name, int row, int column)
    {
        var (lo, hi) = Range(format, weights, name, row, column);
        return Cover(format, lo, hi);
    }

    /// <summary>Range shrink factors <see cref="ClippedGrid"/> tries: clipping a few outliers buys a finer step for the rest.</summary>
    private static readonly float[] ClipFactors = [1f, 0.96f, 0.92f, 0.88f, 0.84f, 0.8f, 0.76f, 0.72f];

    /// <summary>
    /// The grid of <see cref="Grid"/> over the group's range shrunk by the factor of <see cref="ClipFactors"/> that gives
    /// the least squared rounding error (GPTQ's grid search): for calibrated methods, whose error feedback then
    /// absorbs part of the clipping.
    /// </summary>
    internal static (Half Scale, Half Min) ClippedGrid(GroupIntFormat format, ReadOnlySpan<float> weights, string name, int row, int column)
    {
        var (lo, hi) = Range(format, weights, name, row, column);
        (Half Scale, Half Min) best = default;
        double bestError = double.PositiveInfinity;
        foreach (float factor in ClipFactors)
        {
            var grid = Cover(format, lo * factor, hi * factor);
            double error = 0;
            foreach (float w in weights)
            {
                double d = w - ((double)Code(format, w, grid.Scale, grid.Min) * (double)grid.Scale + (double)grid.Min);
                error += d * d;
            }
            if (error < bestError) (best, bestError) = (grid, error);
        }
        return best;
    }

    private static (float Lo, float Hi) Range(GroupIntFormat format, ReadOnlySpan<float> weights, string name, int row, int column)
    {
        float lo = float.PositiveInfinity, hi = float.NegativeInfinity;
        foreach (float w in weights)
        {
            lo = Math.Min(lo, w);
            hi = Math.Max(hi, w);
        }
        if (!(lo >= -(float)Half.MaxValue && hi <= (float)Half.MaxValue))
            throw new InvalidDataException(
                $"tensor '{name}': row {row}, group at column {column} holds values in [{lo}, {hi}], outside the f16 range of {format.Name} scales");
        return (lo, hi);
    }

    /// <summary>The smallest f16 grid from below <paramref name="lo"/> that covers <paramref name="hi"/>.</summary>
    private static (Half Scale, Half Min) Cover(GroupIntFormat format, float lo, float hi)
    {
        var min = (Half)lo;
        if ((float)min > lo) min = Half.BitDecrement(min);
        var scale = (Half)((hi - (float)min) / format.MaxCode);
        while (MathF.FusedMultiplyAdd(format.MaxCode, (float)scale, (float)min) < hi) scale = Half.BitIncrement(scale);
        return (scale, min);
    }
}
