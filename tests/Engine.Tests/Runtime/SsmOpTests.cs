using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// The state-space ops (ssm.comp) against the CPU reference on fresh random inputs at sizes that are not multiples of
/// a workgroup: the causal convolution and both scan forms, each fed in pieces that must equal one whole call, and the
/// chunked scan equal to the recurrent one.
/// </summary>
public sealed class SsmOpTests(BackendPair backends) : IClassFixture<BackendPair>
{
    private static float[] RandomValues(int count, double scale = 1.0) => WeightFormatChecks.RandomValues(count, scale);

    private static void AssertClose(float[] expected, float[] actual, double relativeTolerance, string what) =>
        WeightFormatChecks.AssertClose(expected, actual, relativeTolerance, what);

    private IEnumerable<IBackend> Each() => [backends.Cpu, backends.Vulkan];

    private static float[] Read(IBackend backend, ITensor tensor, int length)
    {
        var values = new float[length];
        backend.Read(tensor, values);
        return values;
    }

    [Theory]
    [InlineData(70, 4, 9)]
    [InlineData(130, 3, 1)]
    [InlineData(5, 2, 17)]
    public void CausalConv1d_with_carried_state_matches_reference_in_pieces(int channels, int kernel, int tokens)
    {
        // The input is a part of a wider projection: channels at an offset of 3 in rows of channels + 7.
        int stride = channels + 7;
        float[] x = RandomValues(tokens * stride);
        float[] weight = RandomValues(channels * kernel);
        float[] bias = RandomValues(channels);
        float[] initial = RandomValues(channels * (kernel - 1));
        int[] pieces = tokens == 1 ? [1] : [tokens / 3, 1, tokens - tokens / 3 - 1];

        (float[] Y, float[] State) Run(IBackend be, int[] split)
        {
            var input = be.UploadVector(x);
            var w = be.UploadVector(weight);
            var b = be.UploadVector(bias);
            var state = be.UploadVector(initial);
            var y = be.Allocate(tokens * channels);
            var piece = be.Allocate(tokens * channels);
            int done = 0;
            foreach (int count in split)
            {
                be.CausalConv1d(new RowView(input, 3 + done * stride, stride), w, b, state, piece, count, channels, kernel);
                be.Copy(piece, 0, y, done * channels, count * channels);
                done += count;
            }
            return (Read(be, y, tokens * channels), Read(be, state, initial.Length));
        }

        var whole = Run(backends.Cpu, [tokens]);
        // By the definition: token 0 of channel 1 sees the carried history, then its own input.
        double expected = bias[1] + x[3 + 1] * weight[kernel + kernel - 1];
        for (int k = 0; k < kernel - 1; k++) expected += weight[kernel + k] * initial[(kernel - 1) + k];
        Assert.Equal(expected / (1 + Math.Exp(-expected)), whole.Y[1], 4);
        // The new state is the last kernel-1 inputs.
        Assert.Equal(x[3 + (tokens - 1) * stride], whole.State[kernel - 2]);

        foreach (var be in Each())
        {
            var split = Run(be, pieces);
            AssertClose(whole.Y, split.Y, 1e-5, $"{be.Name} conv1d output in pieces");
            AssertClose(whole.State, split.State, 0, $"{be.Name} conv1d state in pieces");
        }
    }

    /// <summary>A scan's random inputs on one backend: x, B, C and z inside wider rows, as a model's projections lay them out.</summary>
    private sealed record ScanCase(int Heads, int HeadDim, int StateSize, int Groups, bool ScalarDecay, float DtMax, int Tokens)
    {
        public int Channels => Heads * HeadDim;
        public int Width => Channels + 2 * Groups * StateSize + Heads + 3;   // x, B, C, dt and a gap
        public float[] Packed { get; } = RandomValues(Tokens * (Heads * HeadDim + 2 * Groups * StateSize + Heads + 3));
        public float[] Gate { get; } = RandomValues(Tokens * Heads * HeadDim, 2);
        public float[] DtBias { get; } = RandomValues(Heads);
        public float[] Decay { get; } = RandomValues(ScalarDecay ? Heads : Heads * StateSize).Select(v => -MathF.Exp(v)).ToArray();
        public float[] D { get; } = RandomValues(Heads);
        public float[] Initial { get; } = RandomValues(Heads * HeadDim * StateSize);

        public SsmInputs Upload(IBackend be, int firstToken)
        {
            var packed = be.UploadVector(Packed);
            int gs = Groups * StateSize, row = firstToken * Width;
            return new SsmInputs(
                X: new RowView(packed, row, Width),
                Dt: new RowView(packed, row + Channels + 2 * gs, Width),
                B: new RowView(packed, row + Channels, Width),
                C: new RowView(packed, row + Channels + gs, Width),
                Z: new RowView(be.UploadVector(Gate), firstToken * Channels, Channels),
                DtBias: be.UploadVector(DtBias), A: be.UploadVector(Decay), D: be.UploadVector(D),
                Heads, HeadDim, StateSize, Groups, DtMin: 0, DtMax: DtMax);
        }

        /// <summary>Feeds the tokens in the given pieces with <paramref name="scan"/>; returns every output and the final state.</summary>
        public (float[] Y, float[] State) Run(IBackend be, int[] pieces, Action<SsmInputs, ITensor, ITensor, int> scan)
        {
            var state = be.UploadVector(Initial);
            var y = be.Allocate(Tokens * Channels);
            var piece = be.Allocate(Tokens * Channels);
            int done = 0;
            foreach (int count in pieces)
            {
                scan(Upload(be, done), state, piece, count);
                be.Copy(piece, 0, y, done * Channels, count * Channels);
                done += count;
            }
            return (Read(be, y, Tokens * Channels), Read(be, state, Initial.Length));
        }
    }

    public static TheoryData<int, int, int, int, bool, float, int> ScanCases() => new()
    {
        { 37, 1, 16, 1, false, float.PositiveInfinity, 13 },   // Mamba-1: a head per channel, decay per state column
        { 6, 5, 20, 2, true, float.PositiveInfinity, 11 },     // Mamba-2 with two groups
        { 3, 70, 9, 1, true, 0.5f, 1 },                        // one decoded token, dt clamped
        { 2, 3, 100, 1, true, float.PositiveInfinity, 4 },     // a state wider than a workgroup
    };

    [Theory]
    [MemberData(nameof(ScanCases))]
    public void SelectiveScan_matches_reference_in_pieces(int heads, int headDim, int stateSize, int groups, bool scalarDecay, float dtMax, int tokens)
    {
        var c = new ScanCase(heads, headDim, stateSize, groups, scalarDecay, dtMax, tokens);
        int[] pieces = tokens == 1 ? [1] : [tokens / 2, 1, tokens - tokens / 2 - 1];
        var whole = c.Run(backends.Cpu, [tokens], (s, state, y, n) => backends.Cpu.SelectiveScan(s, state, y, n));

        // Hand check of channel 0's first output from the definition.
        double dtRaw = c.Packed[c.Channels + 2 * groups * stateSize] + c.DtBias[0];
        double dt = Math.Min(Math.Log(1 + Math.Exp(dtRaw)), dtMax), sum = 0;
        for (int n = 0; n < stateSize; n++)
        {
            double h = Math.Exp(dt * c.Decay[scalarDecay ? 0 : n]) * c.Initial[n] + dt * c.Packed[c.Channels + n] * c.Packed[0];
            sum += h * c.Packed[c.Channels + groups * stateSize + n];
        }
        double z = c.Gate[0];
        Assert.Equal((sum + c.D[0] * c.Packed[0]) * z / (1 + Math.Exp(-z)), whole.Y[0], 4);

        foreach (var be in Each())
        {
            var split = c.Run(be, pieces, (s, state, y, n) => be.SelectiveScan(s, state, y, n));
            AssertClose(whole.Y, split.Y, 1e-5, $"{be.Name} selective scan output in pieces");
            AssertClose(whole.State, split.State, 1e-5, $"{be.Name} selective scan state in pieces");
        }
    }

    [Theory]
    [InlineData(4, 3, 16, 1, 8, 21)]     // chunks of 8 over 21 tokens: the last one partial
    [InlineData(6, 5, 20, 2, 5, 12)]
    [InlineData(3, 66, 7, 3, 16, 9)]     // fewer tokens than a chunk, more columns than a workgroup
    [InlineData(300, 1, 3, 1, 256, 290)] // so many heads that the Vulkan backend scores the chunks in two pieces
    public void SsdScan_chunked_equals_the_recurrent_scan(int heads, int headDim, int stateSize, int groups, int chunk, int tokens)
    {
        var c = new ScanCase(heads, headDim, stateSize, groups, ScalarDecay: true, float.PositiveInfinity, tokens);
        var recurrent = c.Run(backends.Cpu, [tokens], (s, state, y, n) => backends.Cpu.SelectiveScan(s, state, y, n));
        int[] pieces = tokens < 3 ? [tokens] : [tokens - 3, 3];
        foreach (var be in Each())
        {
            var whole = c.Run(be, [tokens], (s, state, y, n) => be.SsdScan(s, state, y, n, chunk));
            AssertClose(recurrent.Y, whole.Y, 1e-4, $"{be.Name} chunked scan output");
            AssertClose(recurrent.State, whole.State, 1e-4, $"{be.Name} chunked scan state");
            var split = c.Run(be, pieces, (s, state, y, n) => be.SsdScan(s, state, y, n, chunk));
            AssertClose(recurrent.Y, split.Y, 1e-4, $"{be.Name} chunked scan output in pieces");
        }
    }
}
