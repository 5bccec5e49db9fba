using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers.Calibration;

namespace Engine.Quantizers.Methods;

/// <summary>
/// GPTQ into a group integer format (q8/q4/q3/q2): the same stored layout and grids as round-to-nearest
/// (<see cref="GroupIntEncoder"/>: asymmetric min-max per group of a row, f16 scale and minimum), but each code chosen
/// after the error of the columns before it was fed back. A group's grid is fixed when GPTQ reaches its first column
/// (from the error-updated weights), or up front from the original weights under act-order (static groups), its
/// range clipped where that lowers the group's rounding error.
/// </summary>
public sealed class GroupIntGptq(GroupIntFormat format, GptqOptions options) : ICalibratedEncoder
{
    public WeightType Type => format.Type;

    public string Method => "gptq";

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters, InputStatistics statistics) =>
        EncodeAndDecode(name, values, rows, columns, parameters, statistics).Encoded;

    /// <summary><see cref="Encode"/>, with the matrix GPTQ's feedback was computed against (what the codes decode to).</summary>
    internal (EncodedTensor Encoded, float[] Decoded) EncodeAndDecode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters, InputStatistics statistics)
    {
        var info = new TensorInfo(name, [rows, columns], format.Type, parameters);
        var data = new byte[info.Layout.TotalBytes];
        var quantizer = new ColumnQuantizer(format, info.Layout, data, name, rows, columns, parameters.GroupSize);
        var decoded = Gptq.Quantize(values, rows, columns, statistics.Mean(), quantizer, options);
        return (new EncodedTensor(info, data), decoded);
    }

    /// <summary>One column at a time into the codes stream; the headers stream gets each group's grid at its start.</summary>
    private sealed class ColumnQuantizer(GroupIntFormat format, MatrixLayout layout, byte[] data, string name, int rows, int columns, int groupSize) : IErrorFeedbackQuantizer
    {
        private readonly (Half Scale, Half Min)[] _grids = new (Half, Half)[rows * ((columns + groupSize - 1) / groupSize)];
        private readonly int _groups = (columns + groupSize - 1) / groupSize;

        public int Span => 1;

        public void Prepare(int column, ReadOnlySpan<float> weights)
        {
            if (column % groupSize != 0) return;
            int group = column / groupSize, end = Math.Min(columns, column + groupSize);
            for (int r = 0; r < rows; r++)
            {
                var grid = GroupIntEncoder.ClippedGrid(format, weights.Slice(r * columns + column, end - column), name, r, column);
                _grids[r * _groups + group] = grid;
                GroupIntFormat.WriteHeader(Row(0, r), group, grid.Scale, grid.Min);
            }
        }

        public void Quantize(int column, ReadOnlySpan<float> values, Span<float> decoded)
        {
            int group = column / groupSize;
            for (int r = 0; r < rows; r++)
            {
                var (scale, min) = _grids[r * _groups + group];
                int code = GroupIntEncoder.Code(format, values[r], scale, min);
                format.WriteCode(Row(1, r), column, code);
                decoded[r] = MathF.FusedMultiplyAdd(code, (float)scale, (float)min);
            }
        }

        private Span<byte> Row(int stream, int row) =>
            data.AsSpan((int)(layout.StreamOffset(stream) + row * layout.RowBytes[stream]), (int)layout.RowBytes[stream]);
    }
}
