using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Numerics.Tensors;
using System.Text;
using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers.Pcdvq;

/// <summary>
/// One <see cref="PcdvqFormat"/> tensor as it is written, whatever picks its codes (nearest codeword, GPTQ): the
/// rotation W' = H·S_o·W·S_i·H with random signs seeded from the tensor name (stored in the tail), the row scales,
/// the codeword search and the code streams. The codebook goes with the tensor as its companion.
/// </summary>
internal sealed class PcdvqTensor
{
    private const int Dim = PcdvqFormat.VectorLength;

    private static readonly ConcurrentDictionary<int, Lazy<PcdvqCodewords>> Codebooks = new();

    private readonly byte[] _data;
    private readonly MatrixLayout _layout;
    private readonly int _bits;
    private readonly float[] _scales;

    /// <summary>S_i (padded columns) and S_o (rows) as ±1.</summary>
    private readonly double[] _inputSigns, _outputSigns;

    public PcdvqTensor(string name, int rows, int columns, FormatParameters parameters)
    {
        _bits = parameters.Bits;
        Info = new TensorInfo(name, [rows, columns], WeightType.Pcdvq, parameters with { Reference = PcdvqFormat.CodebookName(_bits) });
        _layout = Info.Layout;
        Rows = rows;
        Columns = columns;
        PaddedColumns = (int)_layout.PaddedColumns;
        Codewords = Codebooks.GetOrAdd(_bits, bits => new Lazy<PcdvqCodewords>(() => new PcdvqCodewords(bits))).Value;
        _data = new byte[_layout.TotalBytes];
        _scales = new float[rows];

        // Signs from the name, so re-quantizing a tensor gives the same file.
        var random = new Random((int)XxHash32.HashToUInt32(Encoding.UTF8.GetBytes(name)));
        _inputSigns = [.. Enumerable.Range(0, PaddedColumns).Select(_ => random.Next(2) == 1 ? -1.0 : 1.0)];
        _outputSigns = [.. Enumerable.Range(0, rows).Select(_ => random.Next(2) == 1 ? -1.0 : 1.0)];
        var tail = _data.AsSpan((int)_layout.TailOffset);
        for (int c = 0; c < PaddedColumns; c++) BitField.Write(tail, c, 1, _inputSigns[c] < 0 ? 1 : 0);
        for (int r = 0; r < rows; r++) BitField.Write(tail[(PaddedColumns / 8)..], r, 1, _outputSigns[r] < 0 ? 1 : 0);
    }

    public TensorInfo Info { get; }

    public int Rows { get; }

    public int Columns { get; }

    public int PaddedColumns { get; }

    public PcdvqCodewords Codewords { get; }

    public EncodedTensor Encoded => new(new StoredBytes(Info, _data), [Codewords.Stored]);

    /// <summary>W' = H·S_o·W·S_i·H [rows, padded columns]: signs and the row transform on each column, then signs and the column transform on each row.</summary>
    public float[] Rotate(ReadOnlySpan<float> values)
    {
        int rows = Rows, columns = Columns, padded = PaddedColumns;
        var w = new double[rows * padded];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                w[r * padded + c] = values[r * columns + c] * _outputSigns[r] * _inputSigns[c];
        var column = new double[rows];
        int rowBlock = Hadamard.BlockSize(rows);
        for (int c = 0; c < columns; c++)
        {
            for (int r = 0; r < rows; r++) column[r] = w[r * padded + c];
            Hadamard.Transform(column, rowBlock);
            for (int r = 0; r < rows; r++) w[r * padded + c] = column[r];
        }
        int columnBlock = Hadamard.BlockSize(padded);
        var rotated = new float[rows * padded];
        Parallel.For(0, rows, r =>
        {
            var row = w.AsSpan(r * padded, padded);
            Hadamard.Transform(row, columnBlock);
            for (int c = 0; c < padded; c++) rotated[r * padded + c] = (float)row[c];
        });
        return rotated;
    }

    /// <summary>
    /// The input second moment as the rotated matrix sees it. W' = A·W·B with B = S_i·H over the padded columns and A
    /// orthogonal, so the layer error tr(ΔW H ΔWᵀ) = tr(ΔW' BᵀHB ΔW'ᵀ): H' = H·S_i·H_pad·S_i·H, H_pad zero on the
    /// padded columns (they have no input).
    /// </summary>
    public double[] RotateInputMoment(double[] h)
    {
        int columns = Columns, padded = PaddedColumns, block = Hadamard.BlockSize(padded);
        var rotated = new double[padded * padded];
        for (int i = 0; i < columns; i++)
            for (int j = 0; j < columns; j++)
                rotated[i * padded + j] = h[i * columns + j] * _inputSigns[i] * _inputSigns[j];
        // H is symmetric: transform the rows, transpose, transform the rows again.
        Parallel.For(0, padded, i => Hadamard.Transform(rotated.AsSpan(i * padded, padded), block));
        for (int i = 0; i < padded; i++)
            for (int j = i + 1; j < padded; j++)
                (rotated[i * padded + j], rotated[j * padded + i]) = (rotated[j * padded + i], rotated[i * padded + j]);
        Parallel.For(0, padded, i => Hadamard.Transform(rotated.AsSpan(i * padded, padded), block));
        return rotated;
    }

    /// <summary>Stores row <paramref name="row"/>'s scale; its codes are then chosen for the row divided by it.</summary>
    public void SetScale(int row, float scale)
    {
        _scales[row] = scale;
        BinaryPrimitives.WriteSingleLittleEndian(_data.AsSpan((int)(_layout.StreamOffset(_layout.StreamCount - 1) + row * 4L)), scale);
    }

    public float Scale(int row) => _scales[row];

    /// <summary>The rotated matrix W' as the stored codes and scales decode to.</summary>
    public float[] DecodeRotated() => PcdvqFormat.DecodeRotated(Info, _data, Codewords.Values);

    /// <summary>The RMS of a rotated row: its 8-vectors then look like standard Gaussian ones, which the codebook is built for.</summary>
    public static float RmsScale(ReadOnlySpan<float> row)
    {
        double sumSquares = 0;
        foreach (float v in row) sumSquares += (double)v * v;
        return (float)Math.Sqrt(sumSquares / row.Length);
    }

    /// <summary>
    /// Codes vector <paramref name="vector"/> of row <paramref name="row"/> (<paramref name="values"/>, 8 rotated
    /// weights) with the nearest codeword, stores it, and writes into <paramref name="decoded"/> what it decodes to,
    /// exactly as <see cref="PcdvqFormat.DecodeRotated"/> computes it. <paramref name="scores"/>: scratch, one per direction.
    /// </summary>
    public void Quantize(int row, int vector, ReadOnlySpan<float> values, Span<float> decoded, float[] scores)
    {
        float scale = _scales[row];
        Span<float> normalized = stackalloc float[Dim];
        for (int i = 0; i < Dim; i++) normalized[i] = scale == 0 ? 0 : values[i] / scale;
        var (direction, magnitude) = Codewords.Nearest(normalized, scores);
        WriteCode(row, vector, direction, magnitude);
        Codewords.Decode(direction, magnitude, scale, decoded);
    }

    private void WriteCode(int row, int vector, int direction, int magnitude)
    {
        long codeOffset = _layout.StreamOffset(0) + row * _layout.RowBytes[0] + vector * 2L;
        if (_bits == 14)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(_data.AsSpan((int)codeOffset), (ushort)(direction | magnitude << 14));
            return;
        }
        BinaryPrimitives.WriteUInt16LittleEndian(_data.AsSpan((int)codeOffset), (ushort)direction);
        BitField.Write(_data.AsSpan((int)(_layout.StreamOffset(1) + row * _layout.RowBytes[1])), 2L * vector, 2, magnitude);
    }
}

/// <summary>The codebook as stored (f16) and as searched: the directions transposed for whole-codebook cosines.</summary>
internal sealed class PcdvqCodewords
{
    private const int Dim = PcdvqFormat.VectorLength;

    private readonly float[][] _coordinates = new float[Dim][];
    private readonly float[] _magnitudes;

    public PcdvqCodewords(int bits)
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
        Values = values;
        _magnitudes = values[(Count * Dim)..(Count * Dim + PcdvqFormat.MagnitudeCount)];
    }

    public StoredBytes Stored { get; }

    /// <summary>The stored codebook's values as the decoder reads them: directions [Count][8], then the magnitudes.</summary>
    public float[] Values { get; }

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

    /// <summary>scale · magnitude · direction, in the decoder's order of float operations.</summary>
    public void Decode(int direction, int magnitude, float scale, Span<float> destination)
    {
        float length = scale * _magnitudes[magnitude];
        for (int i = 0; i < Dim; i++) destination[i] = length * Values[direction * Dim + i];
    }
}
