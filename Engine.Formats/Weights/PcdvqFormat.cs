using System.Buffers.Binary;

namespace Engine.Formats.Weights;

/// <summary>
/// PCDVQ (polar-coordinate decoupled vector quantization): the matrix is rotated, W' = H·S_o·W·S_i·H, with S random ±1
/// signs and H the block-diagonal Walsh-Hadamard transform (<see cref="Hadamard"/>), so its entries are close to
/// Gaussian; each row of W' is divided by its RMS and cut into vectors of 8, and each vector is one code: a
/// direction index (Bits = 14 or 16) into a codebook of unit vectors and a 2-bit index into 4 magnitudes.
/// Reconstruction: w' = scale_row · magnitude[m] · direction[d]; W = S_o·H·W'·H·S_i, the transforms undone online
/// around the mat-vec.
/// <para>The codebook is one tensor per model, named by <see cref="FormatParameters.Reference"/>: f16 [2^Bits + 1, 8],
/// the directions then a row holding the 4 magnitudes.</para>
/// <para>Streams (rows padded with zeros to a multiple of 16): 0 = one 16-bit code per vector (Bits 14: direction
/// in bits 0-13, magnitude in 14-15; Bits 16: the direction); with Bits 16, 1 = the 2-bit magnitude indices (vector v
/// at bits 2v..2v+1); last = the row's scale (f32). Tail: the input signs S_i (one bit per padded column, 1 = -1),
/// then the output signs S_o (one bit per row).</para>
/// Bits per weight = (Bits + 2) / 8: 2.0 at 14 bits, 2.25 at 16, plus 32 bits per row, the signs and the codebook's share.
/// </summary>
public sealed class PcdvqFormat : WeightFormat
{
    public const int VectorLength = 8;
    public const int MagnitudeCount = 4;

    private PcdvqFormat()
    {
    }

    public static PcdvqFormat Instance { get; } = new();

    public override WeightType Type => WeightType.Pcdvq;

    public override string Name => "pcdvq";

    /// <summary>The name of the codebook tensor for direction indices of <paramref name="bits"/> bits.</summary>
    public static string CodebookName(int bits) => $"pcdvq.codebook.{bits}";

    public override FormatParameters DefaultParameters => new(Bits: 14, Reference: CodebookName(14));

    public override void Validate(FormatParameters parameters)
    {
        if (parameters.Bits is not (14 or 16))
            throw new InvalidDataException($"{Name}: {parameters.Bits}-bit direction indices, the format has 14 (2.0 bpw) or 16 (2.25 bpw)");
        if (string.IsNullOrEmpty(parameters.Reference))
            throw new InvalidDataException($"{Name}: no codebook tensor named");
        if (parameters.GroupSize != 0 || parameters.Planes != 0 || parameters.Rank != 0)
            throw new InvalidDataException($"{Name} takes only direction bits and a codebook, got {parameters}");
    }

    public override int BlockSize(FormatParameters parameters) => 32;

    public override int BlockBytes(FormatParameters parameters) => 4 * (parameters.Bits + 2) / 8;

    public override MatrixLayout Layout(long rows, long columns, FormatParameters parameters)
    {
        Validate(parameters);
        long padded = RoundUp(columns, 16);
        long vectors = padded / VectorLength;
        long signBytes = padded / 8 + (rows + 7) / 8;
        if (parameters.Bits == 14)
            return MatrixLayout.Packed(rows, columns, padded, [vectors * 2, 4], signBytes);
        long magnitudeBytes = (vectors + 3) / 4;
        return new MatrixLayout(rows, columns, padded, [vectors * 2, magnitudeBytes, 4], [vectors * 2, RoundUp(magnitudeBytes, 4), 4], signBytes);
    }

    public override string ShaderTag(FormatParameters parameters) => Name;

    public override void ShaderParameters(FormatParameters parameters, int precision, Span<uint> destination) =>
        destination[0] = (uint)parameters.Bits;

    /// <summary>The sign vectors (±1) of the input (padded columns) and output (rows) rotations.</summary>
    public static (float[] Input, float[] Output) Signs(TensorInfo info, ReadOnlySpan<byte> data)
    {
        var layout = info.Layout;
        var tail = layout.Tail(data);
        var input = new float[layout.PaddedColumns];
        var output = new float[layout.Rows];
        for (int i = 0; i < input.Length; i++) input[i] = BitField.Read(tail, i, 1) == 1 ? -1 : 1;
        var outputBits = tail[(int)(layout.PaddedColumns / 8)..];
        for (int i = 0; i < output.Length; i++) output[i] = BitField.Read(outputBits, i, 1) == 1 ? -1 : 1;
        return (input, output);
    }

    /// <summary>The codebook tensor's values: directions [2^Bits][8], then the 4 magnitudes (at 2^Bits · 8).</summary>
    public static float[] ReadCodebook(FormatParameters parameters, ITensorSource? shared)
    {
        string name = parameters.Reference!;
        if (shared is null || !shared.TryGet(name, out var info))
            throw new InvalidDataException($"pcdvq: codebook tensor '{name}' not found");
        int count = 1 << parameters.Bits;
        if (info.Type != WeightType.F16 || info.Shape is not [var n, VectorLength] || n != count + 1)
            throw new InvalidDataException($"pcdvq: codebook tensor '{name}' is {info.ShapeText} {info.Format.Name}, expected [{count + 1}, 8] f16");
        return shared.ReadFloat32(name);
    }

    /// <summary>Decodes the rotated matrix W' [rows, padded columns] (codes × magnitudes × row scales).</summary>
    public static float[] DecodeRotated(TensorInfo info, ReadOnlySpan<byte> data, float[] codebook)
    {
        var layout = info.Layout;
        int bits = info.Parameters.Bits;
        int padded = (int)layout.PaddedColumns;
        var rotated = new float[layout.Rows * padded];
        int directionMask = (1 << bits) - 1;
        int magnitudes = (1 << bits) * VectorLength;
        for (long r = 0; r < layout.Rows; r++)
        {
            var codes = layout.Row(data, 0, r);
            float scale = BinaryPrimitives.ReadSingleLittleEndian(layout.Row(data, layout.StreamCount - 1, r));
            var magnitudeRow = bits == 16 ? layout.Row(data, 1, r) : default;
            for (int v = 0; v < padded / VectorLength; v++)
            {
                int code = BinaryPrimitives.ReadUInt16LittleEndian(codes[(2 * v)..]);
                int direction = code & directionMask;
                int magnitude = bits == 14 ? code >> 14 : BitField.Read(magnitudeRow, 2L * v, 2);
                float length = scale * codebook[magnitudes + magnitude];
                for (int i = 0; i < VectorLength; i++)
                    rotated[r * padded + v * VectorLength + i] = length * codebook[direction * VectorLength + i];
            }
        }
        return rotated;
    }

    public override void Decode(TensorInfo info, ReadOnlySpan<byte> data, Span<float> destination, ITensorSource? shared)
    {
        var (inputSigns, outputSigns) = Signs(info, data);
        float[] w = DecodeRotated(info, data, ReadCodebook(info.Parameters, shared));
        int rows = (int)info.Rows, columns = (int)info.Columns, padded = inputSigns.Length;
        // W = S_o·H·W'·H·S_i: the column transform on every row, then the row transform on every column.
        var row = new double[padded];
        int columnBlock = Hadamard.BlockSize(padded);
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < padded; c++) row[c] = w[r * padded + c];
            Hadamard.Transform(row, columnBlock);
            for (int c = 0; c < padded; c++) w[r * padded + c] = (float)(row[c] * inputSigns[c]);
        }
        var column = new double[rows];
        int rowBlock = Hadamard.BlockSize(rows);
        for (int c = 0; c < columns; c++)
        {
            for (int r = 0; r < rows; r++) column[r] = w[r * padded + c];
            Hadamard.Transform(column, rowBlock);
            for (int r = 0; r < rows; r++) destination[r * columns + c] = (float)(column[r] * outputSigns[r]);
        }
    }
}
