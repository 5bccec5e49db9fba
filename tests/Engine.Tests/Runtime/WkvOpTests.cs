using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// The RWKV time-mixing ops (WKV4, WKV6, WKV7) on Vulkan against the CPU reference on fresh random inputs, at sizes
/// that are not multiples of a workgroup; and on each backend, two calls carrying the state equal one call.
/// </summary>
public sealed class WkvOpTests(BackendPair backends) : IClassFixture<BackendPair>
{
    /// <summary>An op input: token-major rows ([tokens][width], split between calls) or one vector for every token.</summary>
    private sealed record Input(float[] Values, bool PerToken);

    private delegate void Op(IBackend backend, ITensor[] inputs, ITensor state, ITensor output, int tokens);

    private static float[] Random(int count, double scale = 1.0) => WeightFormatChecks.RandomValues(count, scale);

    private static float[] Map(float[] values, Func<float, float> f) => values.Select(f).ToArray();

    /// <summary>Feeds the tokens in calls of <paramref name="pieces"/> tokens: every output row and the final state.</summary>
    private static (float[] Output, float[] State) Run(IBackend be, Input[] inputs, float[] state, int width, int[] pieces, Op op)
    {
        var stateTensor = be.UploadVector(state);
        var output = new float[pieces.Sum() * width];
        int start = 0;
        foreach (int count in pieces)
        {
            var tensors = inputs.Select(i => be.UploadVector(i.PerToken ? i.Values.AsSpan(start * width, count * width) : i.Values)).ToArray();
            var o = be.Allocate(count * width);
            op(be, tensors, stateTensor, o, count);
            be.Read(o, output.AsSpan(start * width, count * width));
            start += count;
        }
        var finalState = new float[state.Length];
        be.Read(stateTensor, finalState);
        return (output, finalState);
    }

    private void Check(string name, Input[] inputs, float[] state, int tokens, int width, Op op)
    {
        int[] whole = [tokens], pieces = [5, tokens - 5];
        var reference = Run(backends.Cpu, inputs, state, width, whole, op);
        foreach (var (backend, split) in new[] { (backends.Cpu as IBackend, pieces), (backends.Vulkan, whole), (backends.Vulkan, pieces) })
        {
            var (output, finalState) = Run(backend, inputs, state, width, split, op);
            string what = $"{name} on {backend.Name} in {split.Length} call(s)";
            WeightFormatChecks.AssertClose(reference.Output, output, 1e-5, what + ", output");
            WeightFormatChecks.AssertClose(reference.State, finalState, 1e-5, what + ", state");
        }
    }

    [Theory]
    [InlineData(6, 75)]
    [InlineData(37, 131)]
    public void Wkv4_matches_reference_and_carries_its_state(int tokens, int channels)
    {
        var state = new float[3 * channels];
        state.AsSpan(2 * channels).Fill(-1e38f); // a fresh sequence
        Input[] inputs =
        [
            new(Map(Random(channels), w => -MathF.Exp(w)), false), new(Random(channels), false),
            new(Random(tokens * channels, 3), true), new(Random(tokens * channels), true),
        ];
        Check("wkv4", inputs, state, tokens, channels,
            (be, t, s, o, n) => be.Wkv4(t[0], t[1], t[2], t[3], s, o, n, channels));
    }

    [Theory]
    [InlineData(3, 24, 13)]
    [InlineData(5, 64, 9)]
    public void Wkv6_matches_reference_and_carries_its_state(int heads, int headSize, int tokens)
    {
        int width = heads * headSize;
        Input[] inputs =
        [
            new(Random(tokens * width), true), new(Random(tokens * width), true), new(Random(tokens * width), true),
            new(Map(Random(tokens * width), x => MathF.Exp(-MathF.Exp(x))), true), new(Random(width), false),
        ];
        Check("wkv6", inputs, Random(heads * headSize * headSize), tokens, width,
            (be, t, s, o, n) => be.Wkv6(t[0], t[1], t[2], t[3], t[4], s, o, n, heads, headSize));
    }

    [Theory]
    [InlineData(3, 20, 13)]
    [InlineData(2, 64, 9)]
    public void Wkv7_matches_reference_and_carries_its_state(int heads, int headSize, int tokens)
    {
        int width = heads * headSize;
        // As the model makes them: a = -kk, b = kk·rate with kk of unit length per head and rate in (0, 1).
        float[] kk = Random(tokens * width), rate = Map(Random(tokens * width), x => (x + 1) / 2);
        for (int row = 0; row < tokens * heads; row++)
        {
            var head = kk.AsSpan(row * headSize, headSize);
            float norm = MathF.Sqrt(head.ToArray().Sum(x => x * x));
            foreach (ref float x in head) x /= norm;
        }
        Input[] inputs =
        [
            new(Random(tokens * width), true), new(Map(Random(tokens * width), x => MathF.Exp(-0.6f * (x + 1) / 2)), true),
            new(Random(tokens * width), true), new(Random(tokens * width), true),
            new(Map(kk, x => -x), true), new(kk.Zip(rate, (x, r) => x * r).ToArray(), true),
        ];
        Check("wkv7", inputs, Random(heads * headSize * headSize, 0.5), tokens, width,
            (be, t, s, o, n) => be.Wkv7(t[0], t[1], t[2], t[3], t[4], t[5], s, o, n, heads, headSize));
    }
}
