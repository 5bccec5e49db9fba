using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Numerics.Tensors;
using System.Text;
using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers.Pcdvq;

namespace Engine.Quantizers;

/// <summary>
/// PCDVQ by nearest codeword: random signs seeded from the tensor name, the block Hadamard rotation on both sides,
/// per-row RMS scaling, then for every 8-vector the direction of largest cosine (searched over the whole codebook)
/// and the nearest magnitude (<see cref="PcdvqFormat"/>). The codebook goes with the tensor as its companion.
/// </summary>
public sealed class PcdvqEncoder : IWeightEncoder
{
    private const int Dim = PcdvqFormat.VectorLength;

    private static readonly ConcurrentDictionary<int, Lazy<Codebook>> Codebooks = new();

    public WeightType Type => WeightType.Pcdvq;

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters)
    {
        parameters = parameters with { Reference = PcdvqFormat.CodebookName(parameters.Bits) };
        var info = new TensorInfo(name, [rows, columns], WeightType.Pcdvq, parameters);
        var layout = info.Layout;
        int padded = (int)layout.PaddedColumns;
        var codebook = Codebooks.GetOrAdd(parameters.Bits, bits => new Lazy<Codebook>(() => new Codebook(bits))).Value;
        var data = new byte[layout.TotalBytes];

        // Signs from the name, so re-quantizing a tensor gives the same file.
        var random = new Random((int)XxHash32.HashToUInt32(Encoding.UTF8.GetBytes(name)));
        var inputSigns = Enumerable.Range(0, padded).Select(_ => random.Next(2) == 1).ToArray();
        var outputSigns = Enumerable.Range(0, rows).Select(_ => random.Next(2) == 1).ToArray();
        var tail = data.AsSpan((int)layout.TailOffset);
        for (int c = 0; c < padded; c++) BitField.Write(tail, c, 1, inputSigns[c] ? 1 : 0);
        for (int r = 0; r < rows; r++) BitField.Write(tail[(padded / 8)..], r, 1, outputSigns[r] ? 1 : 0);

        // W' = H·S_o·W·S_i·H: signs and the row transform on each column, then signs and the column transform on each row.
        var w = new double[rows * padded];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                w[r * padded + c] = values[r * columns + c] * (outputSigns[r] ? -1.0 : 1.0) * (inputSigns[c] ? -1.0 : 1.0);
        var column = new double[rows];
        int rowBlock = Hadamard.BlockSize(rows);
        for (int c = 0; c < columns; c++)
        {
            for (int r = 0; r < rows; r++) column[r] = w[r * padded + c];
            Hadamard.Transform(column, rowBlock);
            for (int r = 0; r < rows; r++) w[r * padded + c] = column[r];
        }
        int columnBlock = Hadamard.BlockSize(padded);
        Parallel.For(0, rows, r =>
        {
            var row = w.AsSpan(r * padded, padded);
            Hadamard.Transform(row, columnBlock);
            double sumSquares = 0;
            foreach (double v in row) sumSquares += v * v;
            float scale = (float)Math.Sqrt(sumSquares / padded);
            BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan((int)(layout.StreamOffset(layout.StreamCount - 1) + r * 4L)), scale);
            var vector = new float[Dim];
            var scores = new float[codebook.Count];
            for (int v = 0; v < padded / Dim; v++)
            {
                for (int i = 0; i < Dim; i++) vector[i] = scale == 0 ? 0 : (float)(row[v * Dim + i] / scale);
                var (direction, magnitude) = codebook.Nearest(vector, scores);
                WriteCode(data, layout, parameters.Bits, r, v, direction, magnitude);
            }
        });
        return new EncodedTensor(new StoredBytes(info, data), [codebook.Stored]);
    }

    private static void WriteCode(byte[] data, MatrixLayout layout, int bits, int row, int vector, int direction, int magnitude)
    {
        long codeOffset = layout.StreamOffset(0) + row * layout.RowBytes[0] + vector * 2L;
        if (bits == 14)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan((int)codeOffset), (ushort)(direction | magnitude << 14));
            return;
        }
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan((int)codeOffset), (ushort)direction);
        BitField.Write(data.AsSpan((int)(layout.StreamOffset(1) + row * layout.RowBytes[1])), 2L * vector, 2, magnitude);
    }

    /// <summary>The codebook as stored (f16) and as searched: the directions transposed for whole-codebook cosines.</summary>
    private sealed class Codebook
    {
        private readonly float[][] _coordinates = new float[Dim][];
        private readonly float[] _magnitudes;

        public Codebook(int bits)
        {
            Stored = PcdvqCodebook.Build(bits);
            Count = 1 << bits;
            // Search the f16-rounded values the decoder will use.
            var values = new float[(Count + 1) * Dim];
            FloatFormat.F16.DecodeValues(Stored.Data, values);
            for (int i = 0; i < Dim; i++)
            {
                _coordinates[i] = new float[Count];
                for (int d = 0; d < Count; d++) _coordinates[i][d] = values[d * Dim + i];
            }
            _magnitudes = values[(Count * Dim)..(Count * Dim + PcdvqFormat.MagnitudeCount)];
        }

        public StoredBytes Stored { get; }

        public int Count { get; }

        /// <summary>
        /// The direction of largest cosine, and the magnitude closest to the vector's length along it (its projection,
        /// which minimizes the squared error for that direction; the paper's ‖v‖ is the same when the direction fits).
        /// </summary>
        public (int Direction, int Magnitude) Nearest(ReadOnlySpan<float> vector, float[] scores)
        {
            TensorPrimitives.Multiply(_coordinates[0], vector[0], scores);
            for (int i = 1; i < Dim; i++) TensorPrimitives.MultiplyAdd(_coordinates[i], vector[i], scores, scores);
            int direction = TensorPrimitives.IndexOfMax(scores);
            // The best length along the chosen direction is its projection, norm · cosine.
            double projection = scores[direction];
            int magnitude = 0;
            for (int m = 1; m < _magnitudes.Length; m++)
                if (Math.Abs(_magnitudes[m] - projection) < Math.Abs(_magnitudes[magnitude] - projection)) magnitude = m;
            return (direction, magnitude);
        }
    }
}
