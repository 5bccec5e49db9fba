using System.Diagnostics.CodeAnalysis;

namespace Engine.Formats.Weights;

/// <summary>The factor tensors of one low-rank tensor W ≈ U·V (+ R), as a source describes them.</summary>
/// <param name="U">[rows, rank]: carries the singular values.</param>
/// <param name="V">[rank, columns].</param>
/// <param name="Residual">[rows, columns], when the tensor adds one.</param>
public sealed record LowRankFactors(TensorInfo U, TensorInfo V, TensorInfo? Residual);

/// <summary>
/// Low-rank weights: W ≈ U·V, optionally plus a residual R, W ≈ U·V + R. The tensor stores no bytes of its own; its
/// factors are tensors of their own, each in any registered format (f16, q4, binary, ...), found by name:
/// <list type="bullet">
/// <item>U [rows, Rank]: "NAME.u", or the tensor <see cref="FormatParameters.Reference"/> names when U is shared
/// (MoBiE: one U·Σ per projection type for all experts, each expert with its own V).</item>
/// <item>V [Rank, columns]: "NAME.v".</item>
/// <item>R [rows, columns]: "NAME.residual", present exactly when <see cref="FormatParameters.Planes"/> is 2 (the
/// residual is the second term, as binary's second plane codes the first plane's residual).</item>
/// </list>
/// Parameters: Rank (0 only in a request, where the encoder chooses it; a stored tensor has 1 ≤ Rank ≤ min(rows,
/// columns)), Planes 0 or 2, Reference. Bits per weight come from the factors' bytes (<see cref="StoredSizes"/>
/// counts them as the tensor's companions); the format's own formula is 0 bits, so the quantizer's rule for
/// targets below 8 bits keeps the embedding table out of low-rank, which the backends cannot look rows up in.
/// The backends run it as two (three) linears of the factors; there is no shader of its own.
/// </summary>
public sealed class LowRankFormat : WeightFormat
{
    /// <summary><see cref="FormatParameters.Planes"/> of a tensor that adds a residual.</summary>
    public const int WithResidual = 2;

    private LowRankFormat()
    {
    }

    public static LowRankFormat Instance { get; } = new();

    public override WeightType Type => WeightType.LowRank;

    public override string Name => "lowrank";

    public override void Validate(FormatParameters parameters)
    {
        if (parameters.Rank < 0)
            throw new InvalidDataException($"{Name}: rank {parameters.Rank} is negative");
        if (parameters.Planes is not (0 or WithResidual))
            throw new InvalidDataException($"{Name}: planes {parameters.Planes}; 0 stores U·V, {WithResidual} adds a residual");
        if (parameters.GroupSize != 0 || parameters.Bits != 0)
            throw new InvalidDataException($"{Name} takes only a rank, a plane count and a reference, got {parameters}");
        if (parameters.Reference is { Length: 0 })
            throw new InvalidDataException($"{Name}: the reference to a shared factor is an empty name");
    }

    // Nothing of its own: the bytes are the factors'.
    public override int BlockSize(FormatParameters parameters) => 1;

    public override int BlockBytes(FormatParameters parameters) => 0;

    public override MatrixLayout Layout(long rows, long columns, FormatParameters parameters)
    {
        Validate(parameters);
        if (parameters.Rank < 1 || parameters.Rank > Math.Min(rows, columns))
            throw new InvalidDataException($"{Name}: rank {parameters.Rank} of a [{rows}, {columns}] matrix is outside 1..{Math.Min(rows, columns)}");
        return new MatrixLayout(rows, columns, columns, [], [], 0);
    }

    public override IReadOnlyList<string> References(TensorInfo info) =>
        info.Parameters.Planes == WithResidual ? [UName(info), VName(info), ResidualName(info)] : [UName(info), VName(info)];

    /// <summary>The name of the U factor: the shared one the tensor references, else its own.</summary>
    public static string UName(TensorInfo info) => info.Parameters.Reference ?? info.Name + ".u";

    public static string VName(TensorInfo info) => info.Name + ".v";

    public static string ResidualName(TensorInfo info) => info.Name + ".residual";

    /// <summary>
    /// Finds the factors of <paramref name="info"/> in <paramref name="source"/> and checks their shapes; throws
    /// <see cref="InvalidDataException"/> naming the tensor and the factor that is missing or wrong.
    /// </summary>
    public LowRankFactors Factors(TensorInfo info, [NotNull] ITensorSource? source)
    {
        if (source is null)
            throw new InvalidDataException($"{Name} tensor '{info.Name}' needs its factor tensors, and no tensor source was given");
        return Factors(info, name => source.TryGet(name, out var factor) ? factor : null, source.Path);
    }

    public override void CheckReferences(TensorInfo info, Func<string, TensorInfo?> find, string where) => Factors(info, find, where);

    private LowRankFactors Factors(TensorInfo info, Func<string, TensorInfo?> find, string where)
    {
        MatrixLayout layout;
        try
        {
            layout = info.Layout;
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{where}: tensor '{info.Name}' {info.ShapeText}: {e.Message}", e);
        }
        long rows = layout.Rows, columns = layout.Columns, rank = info.Parameters.Rank;
        return new LowRankFactors(
            Factor(UName(info), rows, rank),
            Factor(VName(info), rank, columns),
            info.Parameters.Planes == WithResidual ? Factor(ResidualName(info), rows, columns) : null);

        TensorInfo Factor(string name, long factorRows, long factorColumns)
        {
            string tensor = $"{where}: {Name} tensor '{info.Name}' {info.ShapeText} rank {rank}";
            var factor = find(name) ?? throw new InvalidDataException($"{tensor} needs factor '{name}', which is not there");
            if (factor.Shape.Length != 2 || factor.Shape[0] != factorRows || factor.Shape[1] != factorColumns)
                throw new InvalidDataException($"{tensor}: factor '{name}' has shape {factor.ShapeText}, expected [{factorRows}, {factorColumns}]");
            if (factor.Type == WeightType.LowRank)
                throw new InvalidDataException($"{tensor}: factor '{name}' is itself {Name}; factors are plain matrices");
            return factor;
        }
    }

    /// <summary>Dense U·V (+ R) from the factors' own CPU decodes, accumulated in float64.</summary>
    public override void Decode(TensorInfo info, ReadOnlySpan<byte> data, Span<float> destination, ITensorSource? shared)
    {
        var factors = Factors(info, shared);
        if (data.Length != 0)
            throw new InvalidDataException($"{Name} tensor '{info.Name}' holds {data.Length} bytes of its own; its data are its factors");
        int rows = (int)info.Rows, columns = (int)info.Columns, rank = info.Parameters.Rank;
        float[] u = shared.ReadFloat32(factors.U.Name);
        float[] v = shared.ReadFloat32(factors.V.Name);
        float[]? residual = factors.Residual is null ? null : shared.ReadFloat32(factors.Residual.Name);

        // Rows in blocks, each block's rows in parallel into a buffer (a span cannot be shared with the workers).
        int blockRows = Math.Max(1, Math.Min(rows, (1 << 20) / columns));
        var block = new float[blockRows * columns];
        for (int first = 0; first < rows; first += blockRows)
        {
            int count = Math.Min(blockRows, rows - first);
            Parallel.For(0, count, () => new double[columns], (r, _, sum) =>
            {
                int row = first + r;
                if (residual is null) Array.Clear(sum);
                else for (int c = 0; c < columns; c++) sum[c] = residual[(long)row * columns + c];
                for (int k = 0; k < rank; k++)
                {
                    double weight = u[(long)row * rank + k];
                    var vRow = v.AsSpan(k * columns, columns);
                    for (int c = 0; c < columns; c++) sum[c] += weight * vRow[c];
                }
                for (int c = 0; c < columns; c++) block[r * columns + c] = (float)sum[c];
                return sum;
            }, _ => { });
            block.AsSpan(0, count * columns).CopyTo(destination[(first * columns)..]);
        }
    }

    public override string ShaderTag(FormatParameters parameters) =>
        throw new NotSupportedException($"{Name} has no shader of its own: the backends run it as linears of its factors");
}
