using System.Globalization;
using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers.Methods;

/// <summary>One way to store a matrix: a format with its parameters, what it costs and the error it brings.</summary>
/// <param name="Bits">Stored bits of the matrix, scales and its own companions included.</param>
/// <param name="Error">Its sensitivity: the layer error tr(ΔW H ΔWᵀ) on the matrix's calibration statistics, weighted by what
/// that error costs the model's output.</param>
/// <param name="Shared">Companions stored once for every matrix that uses them (a PCDVQ codebook), by name.</param>
public sealed record StorageChoice(WeightFormat Format, FormatParameters Parameters, long Bits, double Error, IReadOnlyList<string>? Shared = null);

/// <summary>
/// A bit budget per layer (<c>engine quantize --target-bpw B</c>): each matrix gets one of its candidate formats so
/// that the matrices average at most B bits per weight and the summed sensitivity is least. Solved by Lagrangian
/// relaxation: for a price λ per bit each matrix independently takes the candidate minimising error + λ·bits, the
/// price is bisected until the bits fit, and the budget left over then buys the upgrades with the most error removed
/// per extra bit. Shared companions (a codebook) cost their bits once: the allocation is solved for every set of
/// them that could be paid for, and the best solution kept.
/// </summary>
public static class BitAllocation
{
    /// <summary>
    /// The candidate formats of the traits table a budget chooses among: every group integer width at group sizes 32,
    /// 64 and 128, and PCDVQ at 2.0 and 2.25 bits.
    /// </summary>
    public static IReadOnlyList<(WeightFormat Format, FormatParameters Parameters)> Candidates { get; } =
    [
        .. WeightTypes.All.OfType<GroupIntFormat>().SelectMany(format => new[] { 32, 64, 128 }
            .Select(group => ((WeightFormat)format, format.DefaultParameters with { GroupSize = group }))),
        .. new[] { 14, 16 }.Select(bits => ((WeightFormat)PcdvqFormat.Instance, PcdvqFormat.Instance.DefaultParameters with { Bits = bits, Reference = PcdvqFormat.CodebookName(bits) })),
    ];

    /// <summary>Most shared companions whose subsets are tried (2^this solves).</summary>
    private const int MaxShared = 6;

    /// <summary>
    /// The choice per matrix (same order as <paramref name="matrices"/>, each a list of candidates for one matrix of
    /// <c>elements</c> weights) whose bits sum to at most <paramref name="bitsPerWeight"/> per weight.
    /// </summary>
    /// <param name="sharedBits">The bits of every shared companion a candidate names.</param>
    public static StorageChoice[] Choose(IReadOnlyList<(long Elements, IReadOnlyList<StorageChoice> Candidates)> matrices, double bitsPerWeight,
        IReadOnlyDictionary<string, long>? sharedBits = null)
    {
        long elements = matrices.Sum(m => m.Elements);
        double budget = bitsPerWeight * elements;
        var shared = matrices.SelectMany(m => m.Candidates).SelectMany(c => c.Shared ?? []).Distinct().Order(StringComparer.Ordinal).ToArray();
        if (shared.Length > MaxShared) throw new ArgumentException($"{shared.Length} shared companions among the candidates, at most {MaxShared} are supported");
        StorageChoice[]? best = null;
        for (int subset = 0; subset < 1 << shared.Length; subset++)
        {
            var paid = shared.Where((_, i) => (subset >> i & 1) == 1).ToHashSet(StringComparer.Ordinal);
            long paidBits = paid.Sum(name => sharedBits![name]);
            var allowed = matrices.Select(m => (m.Elements, Candidates: (IReadOnlyList<StorageChoice>)[.. m.Candidates.Where(c => (c.Shared ?? []).All(paid.Contains))])).ToList();
            if (allowed.Any(m => m.Candidates.Count == 0) || allowed.Sum(m => m.Candidates.Min(c => c.Bits)) > budget - paidBits) continue;
            var chosen = ChooseWithin(allowed, budget - paidBits);
            if (best is null || chosen.Sum(c => c.Error) < best.Sum(c => c.Error)) best = chosen;
        }
        return best ?? throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
            $"--target-bpw {bitsPerWeight}: the smallest formats already take {(double)matrices.Sum(m => m.Candidates.Min(c => c.Bits)) / elements:F3} bits per weight"));
    }

    /// <summary>The allocation with every candidate's cost its own bits: least summed error within <paramref name="budget"/> bits.</summary>
    private static StorageChoice[] ChooseWithin(IReadOnlyList<(long Elements, IReadOnlyList<StorageChoice> Candidates)> matrices, double budget)
    {
        StorageChoice[] At(double price) =>
            [.. matrices.Select(m => m.Candidates.MinBy(c => c.Error + price * c.Bits)!)];
        double low = 0, high = 1;
        while (At(high).Sum(c => c.Bits) > budget) high *= 2;
        if (At(low).Sum(c => c.Bits) <= budget) return At(low);
        for (int i = 0; i < 100; i++)
        {
            double middle = (low + high) / 2;
            if (At(middle).Sum(c => c.Bits) > budget) low = middle;
            else high = middle;
        }
        var chosen = At(high);
        // Spend what is left: the upgrade with the most error removed per extra bit, while one fits.
        double left = budget - chosen.Sum(c => c.Bits);
        while (true)
        {
            (int Matrix, StorageChoice Choice, double Gain)? best = null;
            for (int i = 0; i < matrices.Count; i++)
            {
                foreach (var candidate in matrices[i].Candidates)
                {
                    long extra = candidate.Bits - chosen[i].Bits;
                    if (extra <= 0 || extra > left || candidate.Error >= chosen[i].Error) continue;
                    double gain = (chosen[i].Error - candidate.Error) / extra;
                    if (best is not { } b || gain > b.Gain) best = (i, candidate, gain);
                }
            }
            if (best is not { } upgrade) return chosen;
            left -= upgrade.Choice.Bits - chosen[upgrade.Matrix].Bits;
            chosen[upgrade.Matrix] = upgrade.Choice;
        }
    }
}
