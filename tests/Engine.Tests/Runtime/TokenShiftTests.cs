using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Runtime;

/// <summary>
/// <see cref="IBackend.TokenShiftMix"/>, RWKV's token shift with its interpolations in one op: on both backends against
/// a plain loop written here, on random inputs fed in calls of 1, 2 and 7 tokens that carry the state; and the
/// dispatches an RWKV decode step records on Vulkan.
/// </summary>
public sealed class TokenShiftTests(BackendPair backends) : IClassFixture<BackendPair>
{
    /// <summary>Not a multiple of the 256-wide workgroup.</summary>
    private const int Dim = 300;

    private static readonly int[] Pieces = [1, 2, 7];

    /// <summary>outputs[i][t, c] = x[t, c] + (x[t-1, c] - x[t, c]) · (mixes[i, c] + tokenMixes[t, i, c]), x[-1] = state.</summary>
    private static float[][] Loop(float[] x, float[] state, float[] mixes, float[]? tokenMixes, int outputs, int tokens)
    {
        var result = new float[outputs][];
        for (int i = 0; i < outputs; i++)
        {
            result[i] = new float[tokens * Dim];
            for (int t = 0; t < tokens; t++)
                for (int c = 0; c < Dim; c++)
                {
                    float current = x[t * Dim + c], previous = t == 0 ? state[c] : x[(t - 1) * Dim + c];
                    float m = mixes[i * Dim + c];
                    if (tokenMixes is not null) m += tokenMixes[(t * outputs + i) * Dim + c];
                    float shift = previous - current;
                    float product = shift * m;
                    result[i][t * Dim + c] = product + current;
                }
        }
        return result;
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(3, false)]
    [InlineData(6, false)]
    [InlineData(1, true)]
    [InlineData(5, true)]
    [InlineData(6, true)]
    public void Token_shift_mix_matches_a_plain_loop_on_both_backends_carrying_its_state(int outputs, bool perToken)
    {
        int total = Pieces.Sum();
        float[] initial = WeightFormatChecks.RandomValues(Dim);
        float[] x = WeightFormatChecks.RandomValues(total * Dim, 2);
        float[] mixes = WeightFormatChecks.RandomValues(outputs * Dim);
        float[]? tokenMixes = perToken ? WeightFormatChecks.RandomValues(total * outputs * Dim) : null;
        float[][] expected = Loop(x, initial, mixes, tokenMixes, outputs, total);

        foreach (var be in new IBackend[] { backends.Cpu, backends.Vulkan })
        {
            var state = be.UploadVector(initial);
            var mixTensor = be.UploadVector(mixes);
            int start = 0;
            foreach (int tokens in Pieces)
            {
                var xPiece = be.UploadVector(x.AsSpan(start * Dim, tokens * Dim));
                var tokenPiece = tokenMixes is null ? null : be.UploadVector(tokenMixes.AsSpan(start * outputs * Dim, tokens * outputs * Dim));
                var results = Enumerable.Range(0, outputs).Select(_ => be.Allocate(tokens * Dim)).ToArray();
                be.TokenShiftMix(xPiece, state, mixTensor, tokenPiece, results, tokens, Dim, updateState: true);
                for (int i = 0; i < outputs; i++)
                {
                    var actual = new float[tokens * Dim];
                    be.Read(results[i], actual);
                    var want = expected[i].AsSpan(start * Dim, tokens * Dim).ToArray();
                    string what = $"{be.Name}: output {i} of {outputs}, tokens {start}..{start + tokens - 1}";
                    if (be is Engine.Runtime.Cpu.CpuBackend) Assert.True(want.SequenceEqual(actual), what + " differs from the loop");
                    else WeightFormatChecks.AssertClose(want, actual, 1e-6, what);
                }
                start += tokens;
                var carried = new float[Dim];
                be.Read(state, carried);
                Assert.True(x.AsSpan((start - 1) * Dim, Dim).SequenceEqual(carried), $"{be.Name}: the state is the last row after {start} tokens");
            }

            // Without the update the state stays, and the outputs still start from it.
            var again = be.UploadVector(x.AsSpan(0, 2 * Dim));
            var once = be.Allocate(2 * Dim);
            be.TokenShiftMix(again, state, mixTensor, null, [once], 2, Dim, updateState: false);
            var kept = new float[Dim];
            be.Read(state, kept);
            Assert.True(x.AsSpan((total - 1) * Dim, Dim).SequenceEqual(kept), $"{be.Name}: updateState false keeps the state");
            var output = new float[2 * Dim];
            be.Read(once, output);
            WeightFormatChecks.AssertClose(Loop(x.AsSpan(0, 2 * Dim).ToArray(), kept, mixes, null, 1, 2)[0], output, 1e-6, $"{be.Name}: without update");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(40)]   // three chunks of the Vulkan kernel
    public void Vulkan_equals_cpu_on_random_inputs(int tokens)
    {
        const int outputs = 4;
        float[] initial = WeightFormatChecks.RandomValues(Dim);
        float[] x = WeightFormatChecks.RandomValues(tokens * Dim, 3);
        float[] mixes = WeightFormatChecks.RandomValues(outputs * Dim);
        float[] tokenMixes = WeightFormatChecks.RandomValues(tokens * outputs * Dim);
        float[] Run(IBackend be)
        {
            var state = be.UploadVector(initial);
            var results = Enumerable.Range(0, outputs).Select(_ => be.Allocate(tokens * Dim)).ToArray();
            be.TokenShiftMix(be.UploadVector(x), state, be.UploadVector(mixes), be.UploadVector(tokenMixes), results, tokens, Dim, updateState: true);
            var all = new float[(outputs * tokens + 1) * Dim];
            for (int i = 0; i < outputs; i++) be.Read(results[i], all.AsSpan(i * tokens * Dim, tokens * Dim));
            be.Read(state, all.AsSpan(outputs * tokens * Dim));
            return all;
        }
        WeightFormatChecks.AssertClose(Run(backends.Cpu), Run(backends.Vulkan), 1e-6, $"{tokens} tokens");
    }
}
