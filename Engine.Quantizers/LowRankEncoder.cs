using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers;

/// <summary>
/// The closed form of the low-rank format ("svd"): the truncated SVD W ≈ (U·Σ)·Vᵀ, stored as the factor U = U·Σ
/// (it carries the singular values) and V = Vᵀ, each encoded by the default encoder of <see cref="FactorFormat"/>,
/// so the companions are the factor tensors. With a residual (<see cref="ResidualFormat"/> set, or Planes = 2 asked
/// for), R = W − decode(U)·decode(V) is stored too, so the residual also absorbs the factors' rounding.
/// Rank 0 picks the rank whose factors take <see cref="DefaultStorageFraction"/> of the f16 dense size (the residual,
/// when there is one, comes on top). Calibrated factorisations (<see cref="Methods.SaesSvd"/>) store their factors
/// through the same code.
/// </summary>
public sealed class LowRankEncoder : IWeightEncoder
{
    /// <summary>Factor bytes over the f16 dense bytes when the rank is chosen: r·(m + n)·bits = ¼·16·m·n.</summary>
    public const double DefaultStorageFraction = 0.25;

    public WeightType Type => WeightType.LowRank;

    public string Method => "svd";

    /// <summary>The format of U and V.</summary>
    public WeightType FactorFormat { get; init; } = WeightType.F16;

    /// <summary>The factors' parameters; the factor format's defaults when null.</summary>
    public FormatParameters? FactorParameters { get; init; }

    /// <summary>The residual's format: none when null (unless the parameters ask for one: then <see cref="FactorFormat"/>).</summary>
    public WeightType? ResidualFormat { get; init; }

    /// <summary>The residual's parameters; its format's defaults when null.</summary>
    public FormatParameters? ResidualParameters { get; init; }

    /// <summary>The rank whose factors of <paramref name="factorBitsPerWeight"/> take <see cref="DefaultStorageFraction"/> of the f16 dense size.</summary>
    public static int DefaultRank(int rows, int columns, double factorBitsPerWeight)
    {
        double rank = DefaultStorageFraction * 16 * rows * (double)columns / (factorBitsPerWeight * ((double)rows + columns));
        return (int)Math.Clamp(Math.Round(rank), 1, Math.Min(rows, columns));
    }

    /// <summary>
    /// The rank whose factors hold <paramref name="ratio"/> of the dense matrix's parameter count, r·(m + n) ≤ ratio·m·n
    /// (at least 1, at most full rank).
    /// </summary>
    public static int RankForParameterRatio(int rows, int columns, double ratio)
    {
        if (!(ratio > 0)) throw new ArgumentOutOfRangeException(nameof(ratio), $"the parameter ratio must be positive, got {ratio}");
        double rank = Math.Floor(ratio * rows * (double)columns / ((double)rows + columns));
        return (int)Math.Clamp(rank, 1, Math.Min(rows, columns));
    }

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters)
    {
        var matrix = values[..(rows * columns)].ToArray();
        return Encode(name, matrix, rows, columns, parameters, rank =>
        {
            var svd = TruncatedSvd.Compute(matrix, rows, columns, rank);
            return (svd.ScaledU, svd.Vt);
        });
    }

    /// <summary>
    /// Encodes <paramref name="values"/> as the factors <paramref name="factorize"/> gives for the tensor's rank (the
    /// parameters' or the default): U [rows, rank] and V [rank, columns], row-major, with W ≈ U·V.
    /// </summary>
    internal EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters,
        Func<int, (double[] U, double[] V)> factorize)
    {
        var format = LowRankFormat.Instance;
        format.Validate(parameters);
        if (parameters.Reference is not null)
            throw new ArgumentException($"tensor '{name}': a shared U factor (reference '{parameters.Reference}') comes from a joint decomposition ({nameof(MobieEncoder)}), not from one matrix");
        var factorFormat = WeightTypes.Get(FactorFormat);
        var factorParameters = FactorParameters ?? factorFormat.DefaultParameters;
        int rank = parameters.Rank != 0 ? parameters.Rank : DefaultRank(rows, columns, factorFormat.BitsPerWeight(factorParameters));
        bool withResidual = ResidualFormat is not null || parameters.Planes == LowRankFormat.WithResidual;
        var info = new TensorInfo(name, [rows, columns], WeightType.LowRank,
            parameters with { Rank = rank, Planes = withResidual ? LowRankFormat.WithResidual : 0 });
        format.Layout(rows, columns, info.Parameters); // the rank against the shape, before the work

        var (u, v) = factorize(rank);
        var factors = new List<EncodedTensor>
        {
            WeightEncoders.Encode(FactorFormat, LowRankFormat.UName(info), ToSingle(u), rows, rank, factorParameters),
            WeightEncoders.Encode(FactorFormat, LowRankFormat.VName(info), ToSingle(v), rank, columns, factorParameters),
        };
        if (withResidual)
        {
            // The residual of the stored factors, not of the exact SVD: decode U·V as the backends will see it.
            var product = Decode(new EncodedTensor(new StoredBytes(info with { Parameters = info.Parameters with { Planes = 0 } }, []), Companions(factors)));
            for (int i = 0; i < product.Length; i++) product[i] = values[i] - product[i];
            var residualType = ResidualFormat ?? FactorFormat;
            factors.Add(WeightEncoders.Encode(residualType, LowRankFormat.ResidualName(info), product, rows, columns,
                ResidualParameters ?? WeightTypes.Get(residualType).DefaultParameters));
        }
        return new EncodedTensor(new StoredBytes(info, []), Companions(factors));
    }

    /// <summary>The CPU reference decode of an encoded tensor through its companions.</summary>
    internal static float[] Decode(EncodedTensor encoded)
    {
        using var shared = new InMemoryTensors(encoded.Companions);
        var values = new float[encoded.Info.ElementCount];
        encoded.Info.Format.Decode(encoded.Info, encoded.Data, values, shared);
        return values;
    }

    /// <summary>The factor tensors and their own companions, each name once (two factors may share a codebook).</summary>
    internal static List<StoredBytes> Companions(IEnumerable<EncodedTensor> factors) =>
        [.. factors.SelectMany(f => f.Companions.Prepend(f.Tensor)).DistinctBy(t => t.Info.Name, StringComparer.Ordinal)];

    internal static float[] ToSingle(double[] values) => [.. values.Select(v => (float)v)];
}
