using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers.Methods;
using Xunit;

namespace Engine.Tests.Quantization;

public sealed class BitAllocationTests
{
    /// <summary>Matrices with random error curves that fall as bits rise, sensitive ones scaled up.</summary>
    private static List<(long Elements, IReadOnlyList<StorageChoice> Candidates)> Matrices(int count, int seed)
    {
        var random = new Random(seed);
        var matrices = new List<(long, IReadOnlyList<StorageChoice>)>();
        for (int m = 0; m < count; m++)
        {
            long elements = 64 * random.Next(1, 20);
            double sensitivity = Math.Exp(random.NextDouble() * 6);
            matrices.Add((elements, [.. new[] { 2.5, 3.0, 3.25, 4.0, 4.25, 5.0, 8.25 }
                .Select(bpw => new StorageChoice(GroupIntFormat.Q4, default, (long)(bpw * elements), sensitivity * elements * Math.Pow(2, -2 * bpw) * (1 + 0.1 * random.NextDouble())))]));
        }
        return matrices;
    }

    [Theory]
    [InlineData(2.5)]
    [InlineData(3.0)]
    [InlineData(3.7)]
    [InlineData(8.25)]
    public void The_choice_fits_the_budget_and_no_single_swap_within_it_does_better(double budget)
    {
        var matrices = Matrices(30, seed: (int)(budget * 10));
        var chosen = BitAllocation.Choose(matrices, budget);
        long elements = matrices.Sum(m => m.Elements);
        long bits = chosen.Sum(c => c.Bits);
        Assert.True(bits <= budget * elements, $"{bits} bits over a budget of {budget * elements}");
        double error = chosen.Sum(c => c.Error);
        // Against every single change of one matrix's format that still fits, and against uniform choices.
        for (int i = 0; i < matrices.Count; i++)
        {
            foreach (var candidate in matrices[i].Candidates)
            {
                if (bits - chosen[i].Bits + candidate.Bits > budget * elements) continue;
                Assert.True(error <= error - chosen[i].Error + candidate.Error + 1e-9);
            }
        }
        for (int k = 0; k < matrices[0].Candidates.Count; k++)
        {
            var uniform = matrices.Select(m => m.Candidates[k]).ToArray();
            if (uniform.Sum(c => c.Bits) <= budget * elements) Assert.True(error <= uniform.Sum(c => c.Error) + 1e-9);
        }
    }

    [Fact]
    public void A_budget_below_the_smallest_formats_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => BitAllocation.Choose(Matrices(5, 1), 2.0));
        Assert.Contains("--target-bpw 2", error.Message);
    }

    [Theory]
    [InlineData(100, true)]
    [InlineData(1_000_000, false)]
    public void A_shared_codebook_is_paid_once_and_only_when_it_pays(long codebookBits, bool worthIt)
    {
        // Per matrix: 3 bits with a high error, 4 bits with a low one, or 2 bits with a mid error plus the codebook.
        var random = new Random();
        var matrices = Enumerable.Range(0, 20).Select(_ =>
        {
            long elements = 64 * random.Next(1, 10);
            double scale = 1 + random.NextDouble();
            return (elements, (IReadOnlyList<StorageChoice>)
            [
                new StorageChoice(GroupIntFormat.Q3, default, 3 * elements, 10 * scale * elements),
                new StorageChoice(GroupIntFormat.Q4, default, 4 * elements, scale * elements),
                new StorageChoice(PcdvqFormat.Instance, default, 2 * elements, 2 * scale * elements, ["codebook"]),
            ]);
        }).ToList();
        long total = matrices.Sum(m => m.elements);
        // A budget of 3 bits per weight: all at 3 bits, or a mix of 2 (with the codebook) and 4.
        var chosen = BitAllocation.Choose(matrices, 3.0, new Dictionary<string, long> { ["codebook"] = codebookBits });
        bool paid = chosen.Any(c => c.Shared is { Count: > 0 });
        Assert.Equal(worthIt, paid);
        Assert.True(chosen.Sum(c => c.Bits) + (paid ? codebookBits : 0) <= 3.0 * total);
        double allAtThree = matrices.Sum(m => m.Item2[0].Error);
        Assert.True(chosen.Sum(c => c.Error) < allAtThree || !worthIt);
    }

    [Fact]
    public void The_candidates_are_every_group_integer_width_at_three_group_sizes_and_pcdvq_at_both_widths()
    {
        Assert.Equal(WeightTypes.All.OfType<GroupIntFormat>().Count() * 3 + 2, BitAllocation.Candidates.Count);
        Assert.All(BitAllocation.Candidates, c => c.Format.Validate(c.Parameters));
    }
}
