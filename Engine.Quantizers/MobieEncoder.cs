using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers;

/// <summary>The experts of one projection type after the joint decomposition.</summary>
/// <param name="Shared">U·Σ [rows, rank], shared by every expert.</param>
/// <param name="Experts">One low-rank tensor per expert, referencing <paramref name="Shared"/>; its companions are
/// the shared factor (the same object for all, so a writer stores it once) and its own V_eᵀ.</param>
/// <param name="RelativeError">sqrt(Σ_e ||W_e − decode(expert e)||²_F / Σ_e ||W_e||²_F), after the factors' encoding.</param>
public sealed record MobieEncoding(EncodedTensor Shared, IReadOnlyList<EncodedTensor> Experts, double RelativeError)
{
    /// <summary>Every tensor to store, each once: the shared factor (first, with the first expert's companions), the experts and their own factors.</summary>
    public IReadOnlyList<StoredBytes> Tensors() =>
        [.. Experts.SelectMany(e => e.Companions.Append(e.Tensor)).DistinctBy(t => t.Info.Name, StringComparer.Ordinal)];
}

/// <summary>
/// MoBiE's cross-expert joint decomposition (CEJD): the E experts of one projection type, W_e [rows, columns], share
/// U·Σ from the truncated SVD of their concatenation [W_1 … W_E] (rows × E·columns), W_e ≈ (U·Σ)·V_eᵀ with V_eᵀ the
/// e-th [rank, columns] block of Vᵀ. U·Σ is stored once in <see cref="SharedFormat"/> (f16); each expert is a
/// low-rank tensor whose Reference names it, with its own V_eᵀ in <see cref="ExpertFormat"/> (binary in MoBiE).
/// y = (U·Σ)(V_eᵀ x). The paper's calibration-driven parts (GLAS saliency, NGES null-space projection) are not in
/// this closed form.
/// </summary>
public sealed class MobieEncoder(int rank)
{
    public int Rank { get; } = rank > 0 ? rank : throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is not positive");

    public WeightType SharedFormat { get; init; } = WeightType.F16;

    public WeightType ExpertFormat { get; init; } = WeightType.Binary;

    /// <summary>The experts' V_eᵀ parameters; the expert format's defaults when null.</summary>
    public FormatParameters? ExpertParameters { get; init; }

    /// <param name="sharedName">The name of the shared U·Σ tensor.</param>
    /// <param name="experts">Each expert's tensor name and row-major [rows, columns] values.</param>
    public MobieEncoding Encode(string sharedName, IReadOnlyList<(string Name, float[] Values)> experts, int rows, int columns)
    {
        ArgumentNullException.ThrowIfNull(sharedName);
        ArgumentNullException.ThrowIfNull(experts);
        if (experts.Count == 0) throw new ArgumentException("no experts to decompose");
        long elements = (long)rows * columns;
        foreach (var (name, values) in experts)
        {
            if (values.Length != elements)
                throw new ArgumentException($"expert '{name}' has {values.Length} values, [{rows}, {columns}] needs {elements}");
        }
        int count = experts.Count, width = checked(count * columns);
        if (Rank > Math.Min(rows, width))
            throw new ArgumentException($"rank {Rank} exceeds the [{rows}, {width}] concatenation of the experts");

        // [W_1 … W_E]: row r is row r of every expert in turn.
        var joined = new float[checked(rows * width)];
        for (int e = 0; e < count; e++)
        {
            for (int r = 0; r < rows; r++)
                experts[e].Values.AsSpan(r * columns, columns).CopyTo(joined.AsSpan(r * width + e * columns));
        }
        var svd = TruncatedSvd.Compute(joined, rows, width, Rank);

        var shared = WeightEncoders.Encode(SharedFormat, sharedName, LowRankEncoder.ToSingle(svd.ScaledU), rows, Rank);
        var expertParameters = ExpertParameters ?? WeightTypes.Get(ExpertFormat).DefaultParameters;
        var encoded = new List<EncodedTensor>(count);
        double difference = 0, norm = 0;
        var vt = new float[Rank * columns];
        for (int e = 0; e < count; e++)
        {
            var info = new TensorInfo(experts[e].Name, [rows, columns], WeightType.LowRank, new FormatParameters(Rank: Rank, Reference: sharedName));
            for (int k = 0; k < Rank; k++)
            {
                for (int c = 0; c < columns; c++) vt[k * columns + c] = (float)svd.Vt[(long)k * width + e * columns + c];
            }
            var v = WeightEncoders.Encode(ExpertFormat, LowRankFormat.VName(info), vt, Rank, columns, expertParameters);
            var expert = new EncodedTensor(new StoredBytes(info, []), LowRankEncoder.Companions([shared, v]));
            encoded.Add(expert);

            var decoded = LowRankEncoder.Decode(expert);
            var original = experts[e].Values;
            for (int i = 0; i < decoded.Length; i++)
            {
                double d = (double)original[i] - decoded[i];
                difference += d * d;
                norm += (double)original[i] * original[i];
            }
        }
        return new MobieEncoding(shared, encoded, norm > 0 ? Math.Sqrt(difference / norm) : 0);
    }
}
