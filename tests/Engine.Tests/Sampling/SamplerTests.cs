using Engine.Runtime.Sampling;
using Xunit;

namespace Engine.Tests.Sampling;

public sealed class SamplerTests
{
    private static float[] Logits() => [1.0f, 3.0f, 2.5f, -1.0f, 0.5f, 2.9f];

    [Fact]
    public void Temperature_zero_is_argmax_and_respects_suppression()
    {
        var sampler = new Sampler(SamplingOptions.Greedy);
        Assert.Equal(1, sampler.Next(Logits(), []));
        Assert.Equal(5, sampler.Next(Logits(), [], [1]));
    }

    [Fact]
    public void Same_seed_same_choices_and_other_seeds_differ()
    {
        int[] Draw(int seed)
        {
            var sampler = new Sampler(new SamplingOptions { Temperature = 1.5f, TopK = 0, TopP = 1, MinP = 0, Seed = seed });
            return Enumerable.Range(0, 200).Select(_ => sampler.Next(Logits(), [])).ToArray();
        }
        Assert.Equal(Draw(7), Draw(7));
        Assert.NotEqual(Draw(7), Draw(8));
    }

    [Fact]
    public void Top_k_keeps_only_the_k_best()
    {
        var sampler = new Sampler(new SamplingOptions { Temperature = 5, TopK = 2, TopP = 1, MinP = 0, Seed = 1 });
        var seen = Enumerable.Range(0, 500).Select(_ => sampler.Next(Logits(), [])).ToHashSet();
        Assert.Equal(new HashSet<int> { 1, 5 }, seen);
    }

    [Fact]
    public void Top_p_and_min_p_cut_the_tail()
    {
        // Probabilities at temperature 1: token 1 ≈ 0.37, 5 ≈ 0.33, 2 ≈ 0.22, then 0.05, 0.03, 0.007.
        var topP = new Sampler(new SamplingOptions { Temperature = 1, TopK = 0, TopP = 0.65f, MinP = 0, Seed = 3 });
        Assert.Equal(new HashSet<int> { 1, 5 }, Enumerable.Range(0, 500).Select(_ => topP.Next(Logits(), [])).ToHashSet());
        var minP = new Sampler(new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0.5f, Seed = 3 });
        Assert.Equal(new HashSet<int> { 1, 5, 2 }, Enumerable.Range(0, 500).Select(_ => minP.Next(Logits(), [])).ToHashSet());
    }

    [Fact]
    public void Repeat_penalty_demotes_recent_tokens()
    {
        var sampler = new Sampler(SamplingOptions.Greedy with { RepeatPenalty = 2f });
        Assert.Equal(5, sampler.Next(Logits(), [1]));
        Assert.Equal(2, sampler.Next(Logits(), [1, 5]));
    }

    [Theory]
    [InlineData(-1f, 40, 0.9f)]
    [InlineData(1f, -2, 0.9f)]
    [InlineData(1f, 40, 0f)]
    [InlineData(1f, 40, 1.5f)]
    public void Out_of_range_options_are_refused(float temperature, int topK, float topP) =>
        Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP }));
}
