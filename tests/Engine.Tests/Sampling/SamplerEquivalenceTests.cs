using System.Diagnostics;
using Engine.Runtime;
using Engine.Runtime.Sampling;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Sampling;

/// <summary>
/// The sampler against the straightforward algorithm it replaces (sort every candidate, then top-k, temperature,
/// top-p, min-p and one draw), with the tie order made explicit: equal logits by id ascending.
/// </summary>
public sealed class SamplerEquivalenceTests(ITestOutputHelper output)
{
    /// <summary>The previous Sampler, word for word but for the comparison, which breaks ties by id.</summary>
    private sealed class ReferenceSampler(SamplingOptions options)
    {
        private readonly Random _random = new(options.Seed);

        public int Next(Span<float> logits, ReadOnlySpan<int> recent, IReadOnlyCollection<int>? suppressed = null)
        {
            if (options.RepeatPenalty != 1f && options.RepeatLastN > 0)
            {
                var window = recent.Length > options.RepeatLastN ? recent[^options.RepeatLastN..] : recent;
                foreach (int token in new HashSet<int>(window.ToArray()))
                {
                    if ((uint)token >= (uint)logits.Length) continue;
                    logits[token] = logits[token] > 0 ? logits[token] / options.RepeatPenalty : logits[token] * options.RepeatPenalty;
                }
            }
            suppressed ??= [];
            if (options.Temperature == 0) return GreedyDecoder.ArgMax(logits, suppressed);

            var candidates = new List<int>(logits.Length);
            for (int i = 0; i < logits.Length; i++)
            {
                if (!suppressed.Contains(i) && !float.IsNegativeInfinity(logits[i])) candidates.Add(i);
            }
            if (candidates.Count == 0) throw new InvalidOperationException("every token is suppressed: nothing to sample");
            var values = logits.ToArray();
            candidates.Sort((a, b) =>
            {
                int byValue = values[b].CompareTo(values[a]);
                return byValue != 0 ? byValue : a.CompareTo(b);
            });
            if (options.TopK > 0 && candidates.Count > options.TopK) candidates.RemoveRange(options.TopK, candidates.Count - options.TopK);

            double max = values[candidates[0]];
            var probabilities = candidates.Select(t => Math.Exp((values[t] - max) / options.Temperature)).ToArray();
            double total = probabilities.Sum();
            int keep = candidates.Count;
            if (options.TopP < 1)
            {
                double cumulative = 0;
                for (int i = 0; i < candidates.Count; i++)
                {
                    cumulative += probabilities[i] / total;
                    if (cumulative >= options.TopP)
                    {
                        keep = i + 1;
                        break;
                    }
                }
            }
            if (options.MinP > 0)
            {
                double threshold = options.MinP * probabilities[0];
                int above = 1;
                while (above < keep && probabilities[above] >= threshold) above++;
                keep = above;
            }

            double kept = 0;
            for (int i = 0; i < keep; i++) kept += probabilities[i];
            double draw = _random.NextDouble() * kept;
            for (int i = 0; i < keep; i++)
            {
                draw -= probabilities[i];
                if (draw < 0) return candidates[i];
            }
            return candidates[keep - 1];
        }
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    /// <summary>Logits of one of several shapes: spread, LLM-like, tied, flat, sparse with -inf, signed zeros, huge, NaN and +inf.</summary>
    private static float[] MakeLogits(Random random, int vocab, int shape)
    {
        var logits = new float[vocab];
        double spread = 0.5 + random.NextDouble() * 4.5;
        for (int i = 0; i < vocab; i++)
        {
            logits[i] = shape switch
            {
                0 => (float)(Gaussian(random) * spread),
                1 => (float)(Gaussian(random) * 2.5 + (random.Next(1000) == 0 ? 8 + random.NextDouble() * 12 : 0)),
                2 => MathF.Round((float)(Gaussian(random) * spread) * 2) / 2,   // many ties
                3 => 1.25f,                                                      // all tied
                4 => (float)(random.NextDouble() * 0.01),                        // nearly flat
                5 => random.Next(3) == 0 ? (float)Gaussian(random) * 3 : float.NegativeInfinity,
                6 => random.Next(3) switch { 0 => 0f, 1 => -0f, _ => (float)Gaussian(random) * 0.01f },
                7 => (float)(Gaussian(random) * 3000),                           // most probabilities underflow to 0
                _ => random.Next(50) switch { 0 => float.NaN, 1 when random.Next(20) == 0 => float.PositiveInfinity, _ => (float)Gaussian(random) },

            };
        }
        if (shape == 5 && random.Next(2) == 0 && vocab > 0) logits[random.Next(vocab)] = 2;   // sometimes a lone finite one
        return logits;
    }

    private static readonly float[] Temperatures = [0, 0.05f, 0.5f, 0.8f, 1, 1.5f, 4];
    private static readonly int[] TopKs = [0, 0, 1, 2, 5, 40, 40, 300, 2000, 4096, 4097, 9000, 250_000];
    private static readonly float[] TopPs = [1, 1, 0.95f, 0.95f, 0.9f, 0.5f, 0.1f, 0.999999f, 1e-6f];
    private static readonly float[] MinPs = [0, 0, 0.05f, 0.05f, 0.2f, 0.999f, 1];

    private static SamplingOptions RandomOptions(Random random) => new()
    {
        Temperature = Temperatures[random.Next(Temperatures.Length)],
        TopK = TopKs[random.Next(TopKs.Length)],
        TopP = TopPs[random.Next(TopPs.Length)],
        MinP = MinPs[random.Next(MinPs.Length)],
        RepeatPenalty = random.Next(3) == 0 ? 1.3f : 1,
        RepeatLastN = random.Next(3) == 0 ? 0 : 64,
        Seed = random.Next(),
    };

    /// <summary>Several calls in a row on copies of the logits: equal tokens (or the same exception) from both.</summary>
    private static Sampler AssertSameTokens(Random random, float[] logits, SamplingOptions options, double boundSlack = 1, int calls = 3)
    {
        var sampler = new Sampler(options) { BoundSlack = boundSlack };
        var reference = new ReferenceSampler(options);
        int vocab = logits.Length;
        for (int call = 0; call < calls; call++)
        {
            int[] recent = Enumerable.Range(0, random.Next(100)).Select(_ => random.Next(-2, vocab + 2)).ToArray();
            IReadOnlyCollection<int>? suppressed = random.Next(4) switch
            {
                0 => null,
                1 => Enumerable.Range(0, random.Next(1, 5)).Select(_ => random.Next(-1, vocab + 1)).ToArray(),
                2 => Enumerable.Range(0, random.Next(1, 5)).Select(_ => random.Next(-1, vocab + 1)).Append(Array.IndexOf(logits, logits.Max())).ToHashSet(),
                _ => [],
            };
            var a = (float[])logits.Clone();
            var b = (float[])logits.Clone();
            int? expected = null, actual = null;
            Exception? expectedError = null, actualError = null;
            try { expected = reference.Next(a, recent, suppressed); } catch (InvalidOperationException e) { expectedError = e; }
            try { actual = sampler.Next(b, recent, suppressed); } catch (InvalidOperationException e) { actualError = e; }
            Assert.True(expected == actual && expectedError?.Message == actualError?.Message,
                $"vocab {vocab}, {options}, call {call}, suppressed [{string.Join(",", suppressed ?? [])}]: reference {expected?.ToString() ?? expectedError?.Message}, sampler {actual?.ToString() ?? actualError?.Message}");
            Assert.Equal(a, b);   // the same penalty applied in place
            if (expectedError is not null) break;   // the reference's generator did not draw
        }
        return sampler;
    }

    [Theory]
    [InlineData(0, 600)]
    [InlineData(1, 600)]
    [InlineData(2, 600)]
    public void Small_and_medium_vocabularies_give_the_reference_tokens(int seed, int cases)
    {
        var random = new Random(seed);
        int[] sizes = [1, 2, 3, 5, 16, 40, 41, 255, 256, 257, 300, 1000, 1025, 2001, 5000, 12000];
        for (int c = 0; c < cases; c++)
        {
            int vocab = sizes[random.Next(sizes.Length)];
            AssertSameTokens(random, MakeLogits(random, vocab, random.Next(9)), RandomOptions(random));
        }
    }

    [Theory]
    [InlineData(32_000, 10)]
    [InlineData(128_256, 9)]
    [InlineData(200_000, 4)]
    public void Large_vocabularies_give_the_reference_tokens(int vocab, int cases)
    {
        var random = new Random(vocab);
        for (int c = 0; c < cases; c++)
        {
            var logits = MakeLogits(random, vocab, c % 9);
            AssertSameTokens(random, logits, RandomOptions(random) with { TopK = 0 }, calls: 2);
            AssertSameTokens(random, logits, RandomOptions(random), calls: 2);
        }
    }

    [Fact]
    public void Defaults_and_nucleus_only_on_llm_like_logits_give_the_reference_tokens()
    {
        var random = new Random(5);
        for (int c = 0; c < 3; c++)
        {
            var logits = MakeLogits(random, 128_256, 1);
            int seed = random.Next();
            AssertSameTokens(random, logits, new SamplingOptions { Seed = seed });
            AssertSameTokens(random, logits, new SamplingOptions { TopK = 0, TopP = 0.95f, MinP = 0, Seed = seed });
            AssertSameTokens(random, logits, new SamplingOptions { TopK = 0, TopP = 1, MinP = 0, Temperature = 1, Seed = seed });
            AssertSameTokens(random, logits, new SamplingOptions { TopK = 0, TopP = 1, MinP = 0.05f, Seed = seed });
        }
    }

    [Fact]
    public void Ties_across_the_top_k_cut_keep_the_lower_ids()
    {
        // 20 tokens share the best logit: top-k 5 keeps ids 3, 8, 13, 18, 23 and never a later one.
        var logits = Enumerable.Range(0, 100).Select(i => i % 5 == 3 ? 2f : 0f).ToArray();
        var options = new SamplingOptions { Temperature = 1, TopK = 5, TopP = 1, MinP = 0, Seed = 11 };
        var sampler = new Sampler(options);
        var seen = Enumerable.Range(0, 300).Select(_ => sampler.Next((float[])logits.Clone(), [])).ToHashSet();
        Assert.Equal(new HashSet<int> { 3, 8, 13, 18, 23 }, seen);
        AssertSameTokens(new Random(1), logits, options, calls: 50);
    }

    [Fact]
    public void Nothing_left_to_sample_throws_like_the_reference()
    {
        var logits = new[] { float.NegativeInfinity, 1f, float.NegativeInfinity };
        foreach (int topK in new[] { 0, 3, 2000 })
        {
            var options = new SamplingOptions { TopK = topK };
            Assert.Throws<InvalidOperationException>(() => new Sampler(options).Next((float[])logits.Clone(), [], [1]));
            Assert.Throws<InvalidOperationException>(() => new ReferenceSampler(options).Next((float[])logits.Clone(), [], [1]));
            Assert.Throws<InvalidOperationException>(() => new Sampler(options).Next(Array.Empty<float>(), []));
        }
    }

    /// <summary>
    /// With the total's bracket widened a billionfold and more, top-p and draw decisions often fall inside it: the
    /// exact fallback must give the same tokens, and be taken.
    /// </summary>
    [Theory]
    [InlineData(1e9)]
    [InlineData(1e11)]
    [InlineData(1e14)]
    public void Undecided_brackets_fall_back_to_the_exact_order(double slack)
    {
        var random = new Random((int)Math.Log10(slack));
        int fallbacks = 0;
        for (int c = 0; c < 40; c++)
        {
            int vocab = random.Next(300, 6000);
            var options = RandomOptions(random) with { TopK = 0, Temperature = 1 + random.Next(3), TopP = random.Next(2) == 0 ? 1 : TopPs[random.Next(TopPs.Length)] };
            fallbacks += AssertSameTokens(random, MakeLogits(random, vocab, random.Next(3) == 0 ? 4 : 0), options, slack).ExactFallbacks;
        }
        Assert.True(fallbacks > 0, "no call fell back to the exact order");
    }

    /// <summary>Prints the time of one call at a 128k vocabulary, reference against sampler (no assertion on time).</summary>
    [Fact]
    public void Time_at_128k_vocabulary_is_printed()
    {
        var random = new Random(3);
        var logits = MakeLogits(random, 128_256, 1);
        var cases = new (string Name, SamplingOptions Options)[]
        {
            ("defaults (T 0.8, top-k 40, top-p 0.95, min-p 0.05)", new SamplingOptions()),
            ("T 0.8, top-p 0.95 (top-k 0, min-p 0)", new SamplingOptions { TopK = 0, MinP = 0 }),
            ("T 0.8, top-k 0, top-p 0.95, min-p 0.05", new SamplingOptions { TopK = 0 }),
            ("T 1, no filter", new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0 }),
        };
        const int calls = 8;
        foreach (var (name, options) in cases)
        {
            var reference = new ReferenceSampler(options);
            var sampler = new Sampler(options);
            var copy = new float[logits.Length];
            // Warm-up (the JIT's optimized tiers) on another instance; then one untimed call each, where the sampler
            // allocates its buffers.
            var warm = new Sampler(options);
            for (int i = 0; i < 60; i++) warm.Next((float[])logits.Clone(), []);
            Assert.Equal(reference.Next((float[])logits.Clone(), []), sampler.Next((float[])logits.Clone(), []));
            var tokens = new int[2, calls];
            var clock = new Stopwatch();
            for (int i = 0; i < calls; i++)
            {
                logits.CopyTo(copy, 0);
                clock.Start();
                tokens[0, i] = reference.Next(copy, []);
                clock.Stop();
            }
            double referenceMs = clock.Elapsed.TotalMilliseconds / calls;
            clock.Reset();
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < calls; i++)
            {
                logits.CopyTo(copy, 0);
                clock.Start();
                tokens[1, i] = sampler.Next(copy, []);
                clock.Stop();
            }
            allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
            double samplerMs = clock.Elapsed.TotalMilliseconds / calls;
            output.WriteLine($"{name}: full sort {referenceMs:F3} ms, sampler {samplerMs:F3} ms per token ({referenceMs / samplerMs:F0}x), {allocated / calls} bytes allocated per call after the first");
            for (int i = 0; i < calls; i++) Assert.Equal(tokens[0, i], tokens[1, i]);
        }
    }
}

public sealed class SamplerExpTests
{
    /// <summary>The vector exp that brackets the softmax total is far inside the error it declares.</summary>
    [Fact]
    public void Vector_exp_is_within_its_declared_error_of_Math_Exp()
    {
        var random = new Random(9);
        double worst = 0;
        var x = new double[4];
        for (int i = 0; i < 200_000; i++)
        {
            for (int lane = 0; lane < 4; lane++)
                x[lane] = i < 10 ? -i * 0.5 * lane : -random.NextDouble() * Math.Pow(10, random.Next(-12, 3)) * (random.Next(10) == 0 ? 7 : 1);
            var result = Sampler.Exp(System.Runtime.Intrinsics.Vector256.Create(x));
            for (int lane = 0; lane < 4; lane++)
            {
                double expected = Math.Exp(x[lane]);
                if (x[lane] < -700) Assert.Equal(0, result[lane]);
                else worst = Math.Max(worst, Math.Abs(result[lane] - expected) / expected);
            }
        }
        foreach (double edge in new[] { 0.0, -0.0, -700.0, -699.999, -1e-300, -0.34657359027997264, -0.34657359027997270 })
        {
            double value = Sampler.Exp(System.Runtime.Intrinsics.Vector256.Create(edge))[0];
            worst = Math.Max(worst, Math.Abs(value - Math.Exp(edge)) / Math.Exp(edge));
        }
        Assert.Equal(0, Sampler.Exp(System.Runtime.Intrinsics.Vector256.Create(double.NegativeInfinity))[0]);
        Assert.True(worst < Sampler.ExpRelativeError / 100, $"worst relative error {worst}");
    }
}
