using Engine.Runtime;
using Engine.Runtime.Cpu;
using Engine.Runtime.Vulkan;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// The CPU backend and the Vulkan backend under every attention tuning this device can run (its own, the same with many
/// splits over positions, the flash kernel with subgroup reductions, with 16-lane rows that reduce through shared
/// memory inside the subgroup variant, and without subgroup operations), all on one Vulkan device.
/// </summary>
public sealed class AttentionBackends : IDisposable
{
    public AttentionBackends()
    {
        Context = VulkanContext.Create();
        var own = new VulkanBackend(Context);
        var tuning = own.AttentionTuning;
        uint subgroup = Context.Info.SubgroupSize;
        uint shared = Context.Limits.MaxComputeSharedMemorySize;
        Vulkan =
        [
            ("own tuning", own),
            ("own tuning, many splits", new VulkanBackend(Context) { AttentionTuning = tuning with { TargetWorkgroups = 512, MinKeysPerSplit = 16, MaxSplits = 16 } }),
            ("flash, subgroup", new VulkanBackend(Context) { AttentionTuning = AttentionTuning.ForGpu(subgroup, true, shared, 64) }),
            ("flash, rows wider than the subgroup", new VulkanBackend(Context) { AttentionTuning = AttentionTuning.ForGpu(2 * subgroup, true, shared, 64) }),
            ("flash, shared memory, many splits", new VulkanBackend(Context)
            {
                AttentionTuning = AttentionTuning.ForGpu(subgroup, false, shared, 256) with { MinKeysPerSplit = 32 },
            }),
        ];
    }

    public VulkanContext Context { get; }

    public CpuBackend Cpu { get; } = new();

    public IReadOnlyList<(string Name, VulkanBackend Backend)> Vulkan { get; }

    public void Dispose()
    {
        foreach (var (_, backend) in Vulkan) backend.Dispose();
        Cpu.Dispose();
        Context.Dispose();
    }
}

/// <summary>
/// Attention on both backends against a brute-force reference written here from the definition: a query at position p
/// sees the key at j when j &lt;= p and, with a window W, p - j &lt; W (transformers' sliding_window); double-precision
/// softmax over exactly those positions. Every shape runs over a float32 and an f16 cache (the reference then reads
/// the keys and values rounded to half, as the cache stores them).
/// </summary>
public sealed class AttentionOpTests(AttentionBackends backends) : IClassFixture<AttentionBackends>
{
    private const double Tolerance = 1e-4;

    private static float[] Reference(float[] q, float[] k, float[] v, int tokens, int pos0, int heads, int kvHeads, int headDim, float scale, bool causal, int window)
    {
        var o = new float[tokens * heads * headDim];
        int length = pos0 + tokens, group = heads / kvHeads, stride = kvHeads * headDim;
        for (int t = 0; t < tokens; t++)
        {
            int p = pos0 + t;
            for (int h = 0; h < heads; h++)
            {
                int qBase = (t * heads + h) * headDim, kvBase = h / group * headDim;
                var allowed = Enumerable.Range(0, length).Where(j => !causal || (j <= p && (window == 0 || p - j < window))).ToArray();
                var scores = allowed.Select(j =>
                {
                    double dot = 0;
                    for (int d = 0; d < headDim; d++) dot += (double)q[qBase + d] * k[j * stride + kvBase + d];
                    return dot * scale;
                }).ToArray();
                double max = scores.Max();
                var weights = scores.Select(s => Math.Exp(s - max)).ToArray();
                double sum = weights.Sum();
                for (int d = 0; d < headDim; d++)
                {
                    double acc = 0;
                    for (int n = 0; n < allowed.Length; n++) acc += weights[n] * v[allowed[n] * stride + kvBase + d];
                    o[qBase + d] = (float)(acc / sum);
                }
            }
        }
        return o;
    }

    private static readonly ElementType[] CacheTypes = [ElementType.F32, ElementType.F16];

    /// <summary>The values as a cache of this type stores them.</summary>
    private static float[] Stored(float[] values, ElementType cache) =>
        cache == ElementType.F16 ? Array.ConvertAll(values, x => (float)(Half)x) : values;

    private static ITensor Upload(IBackend be, float[] values, ElementType element)
    {
        var tensor = be.Allocate(values.Length, element);
        be.Write(tensor, 0, values);
        return tensor;
    }

    private static float[] Run(IBackend be, float[] q, float[] k, float[] v, int tokens, int pos0, int heads, int kvHeads, int headDim, float scale, bool causal, int window,
        ElementType cache = ElementType.F32)
    {
        var output = be.Allocate(q.Length);
        be.Attention(be.UploadVector(q), Upload(be, k, cache), Upload(be, v, cache), output, tokens, pos0, heads, kvHeads, headDim, scale, causal, window);
        var result = new float[q.Length];
        be.Read(output, result);
        return result;
    }

    /// <summary>Every backend and tuning against the reference, and Vulkan against the CPU backend, over each cache type.</summary>
    private void Check(int tokens, int pos0, int heads, int kvHeads, int headDim, int window, bool causal = true)
    {
        int length = pos0 + tokens;
        float[] q = WeightFormatChecks.RandomValues(tokens * heads * headDim);
        float[] k = WeightFormatChecks.RandomValues(length * kvHeads * headDim);
        float[] v = WeightFormatChecks.RandomValues(length * kvHeads * headDim);
        float scale = 1f / MathF.Sqrt(headDim);
        foreach (var cache in CacheTypes)
        {
            string shape = $"tokens {tokens} at {pos0}, {heads}/{kvHeads} heads of {headDim}, window {window}{(causal ? "" : ", not causal")}, {cache} cache";
            var expected = Reference(q, Stored(k, cache), Stored(v, cache), tokens, pos0, heads, kvHeads, headDim, scale, causal, window);
            var cpu = Run(backends.Cpu, q, k, v, tokens, pos0, heads, kvHeads, headDim, scale, causal, window, cache);
            WeightFormatChecks.AssertClose(expected, cpu, Tolerance, $"cpu, {shape}");
            foreach (var (name, backend) in backends.Vulkan)
            {
                var gpu = Run(backend, q, k, v, tokens, pos0, heads, kvHeads, headDim, scale, causal, window, cache);
                WeightFormatChecks.AssertClose(expected, gpu, Tolerance, $"vulkan ({name}), {shape}");
                WeightFormatChecks.AssertClose(cpu, gpu, Tolerance, $"vulkan ({name}) against cpu, {shape}");
            }
        }
    }

    private static readonly int[] GroupRatios = [1, 2, 4, 8];
    private static readonly int[] HeadDims = [32, 64, 80, 128, 256];

    public static TheoryData<int, int> Shapes()
    {
        var data = new TheoryData<int, int>();
        foreach (int ratio in GroupRatios)
            foreach (int headDim in HeadDims) data.Add(ratio, headDim);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Prompt_piece_longer_than_the_window(int ratio, int headDim) => Check(29, 11, 2 * ratio, 2, headDim, window: 17);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Decode_far_past_the_window(int ratio, int headDim) => Check(1, 613, 2 * ratio, 2, headDim, window: 70);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Decode_over_a_long_context(int ratio, int headDim) => Check(1, 613, 2 * ratio, 2, headDim, window: 0);

    [Theory]
    [InlineData(150, 0, 8, 2, 64, 50)]    // many row blocks; most key tiles outside a block's window
    [InlineData(150, 0, 8, 2, 64, 0)]
    [InlineData(70, 5, 8, 2, 100, 0)]     // head dim not a power of two
    [InlineData(3, 200, 32, 4, 64, 0)]    // a few tokens over a long context: split
    [InlineData(3, 200, 12, 2, 128, 64)]
    [InlineData(12, 0, 4, 4, 16, 1)]      // a window of one: each query sees only itself
    [InlineData(12, 30, 4, 1, 64, 42)]    // the window covers every position: full attention
    [InlineData(9, 3, 4, 2, 6, 0)]        // head dims that are not a multiple of 4
    [InlineData(9, 3, 4, 2, 18, 4)]
    public void Causal_shapes(int tokens, int pos0, int heads, int kvHeads, int headDim, int window) =>
        Check(tokens, pos0, heads, kvHeads, headDim, window);

    [Theory]
    [InlineData(17, 3, 40)]   // a ViT's patches and CLS
    [InlineData(64, 16, 80)]  // Qwen2-VL's vision tower
    [InlineData(50, 4, 64)]
    [InlineData(9, 2, 18)]
    public void Not_causal(int tokens, int heads, int headDim) => Check(tokens, 0, heads, heads, headDim, window: 0, causal: false);

    [Fact]
    public void A_prompt_fed_in_pieces_equals_the_prompt_at_once()
    {
        const int tokens = 45, heads = 8, kvHeads = 2, headDim = 64, window = 16;
        float[] q = WeightFormatChecks.RandomValues(tokens * heads * headDim);
        float[] k = WeightFormatChecks.RandomValues(tokens * kvHeads * headDim);
        float[] v = WeightFormatChecks.RandomValues(tokens * kvHeads * headDim);
        float scale = 0.125f;
        var all = backends.Vulkan.Select(b => (b.Name, (IBackend)b.Backend)).Prepend(("cpu", backends.Cpu));
        foreach (var (cache, (name, backend)) in CacheTypes.SelectMany(c => all.Select(b => (c, b))))
        {
            var expected = Reference(q, Stored(k, cache), Stored(v, cache), tokens, 0, heads, kvHeads, headDim, scale, true, window);
            var pieces = new List<float>();
            int done = 0;
            foreach (int count in new[] { 20, 1, 24 })
            {
                // The cache holds the positions so far (and this piece's); the piece's queries are rows done .. done + count.
                int length = done + count;
                var part = q.AsSpan(done * heads * headDim, count * heads * headDim).ToArray();
                pieces.AddRange(Run(backend, part, k[..(length * kvHeads * headDim)], v[..(length * kvHeads * headDim)], count, done, heads, kvHeads, headDim, scale, true, window, cache));
                done = length;
            }
            var whole = Run(backend, q, k, v, tokens, 0, heads, kvHeads, headDim, scale, true, window, cache);
            WeightFormatChecks.AssertClose(expected, [.. pieces], Tolerance, $"{name}, {cache} cache: in pieces");
            WeightFormatChecks.AssertClose(whole, [.. pieces], Tolerance, $"{name}, {cache} cache: in pieces against at once");
        }
    }

    [Fact]
    public void Window_differs_from_full_attention_only_past_the_window()
    {
        const int tokens = 30, heads = 2, headDim = 32, window = 10;
        float[] q = WeightFormatChecks.RandomValues(tokens * heads * headDim);
        float[] k = WeightFormatChecks.RandomValues(tokens * heads * headDim);
        float[] v = WeightFormatChecks.RandomValues(tokens * heads * headDim);
        foreach (var backend in backends.Vulkan.Select(b => (IBackend)b.Backend).Prepend(backends.Cpu))
        {
            var full = Run(backend, q, k, v, tokens, 0, heads, heads, headDim, 0.2f, true, 0);
            var windowed = Run(backend, q, k, v, tokens, 0, heads, heads, headDim, 0.2f, true, window);
            int firstDifferent = Enumerable.Range(0, tokens).First(t => Enumerable.Range(0, heads * headDim).Any(i => full[t * heads * headDim + i] != windowed[t * heads * headDim + i]));
            Assert.Equal(window, firstDifferent);   // position 10 is the first that cannot see position 0
        }
    }

    [Fact]
    public void Bad_arguments_are_refused_alike()
    {
        foreach (var backend in backends.Vulkan.Select(b => (IBackend)b.Backend).Prepend(backends.Cpu))
        {
            var t = backend.Allocate(64);
            Assert.Throws<ArgumentException>(() => backend.Attention(t, t, t, t, 1, 0, 2, 2, 32, 1f, causal: false, window: 4));
            Assert.Throws<ArgumentOutOfRangeException>(() => backend.Attention(t, t, t, t, 1, 0, 2, 2, 32, 1f, window: -1));
            Assert.Throws<ArgumentException>(() => backend.Attention(t, t, t, t, 1, 0, 3, 2, 16, 1f));
            // An f16 cache holds keys and values alike; queries and outputs stay float32.
            var half = backend.Allocate(64, ElementType.F16);
            Assert.Throws<ArgumentException>(() => backend.Attention(t, half, t, t, 1, 0, 2, 2, 32, 1f));
            Assert.Throws<ArgumentException>(() => backend.Attention(half, half, half, t, 1, 0, 2, 2, 32, 1f));
            Assert.Throws<ArgumentException>(() => backend.Attention(t, half, half, half, 1, 0, 2, 2, 32, 1f));
        }
        var vulkan = backends.Vulkan[0].Backend;
        var big = vulkan.Allocate(300);
        Assert.Throws<NotSupportedException>(() => vulkan.Attention(big, big, big, big, 1, 0, 1, 1, 300, 1f));
    }

    [Fact]
    public void Split_k_reaches_for_the_device()
    {
        var own = backends.Vulkan[0].Backend.AttentionTuning;
        // Decode over 4096 positions with 4 kv heads: one block per kv head, so the positions are split.
        var plan = AttentionPlan.Make(own, 1, 4095, 32, 4, 64, true, 0);
        Assert.True(plan.Splits > 1);
        Assert.True(plan.Splits * plan.SplitLength >= 4096 && (plan.Splits - 1) * plan.SplitLength < 4096);
        // A 512-token prompt fills the device without splitting.
        Assert.Equal(1, AttentionPlan.Make(own, 512, 0, 32, 4, 64, true, 0).Splits);
        // With a window, only the window's positions are split.
        var windowed = AttentionPlan.Make(own, 1, 4095, 32, 4, 64, true, 1000);
        Assert.Equal(3096, windowed.KeyBase);
        Assert.True(windowed.Splits * windowed.SplitLength >= 1000);
        // A GPU with many SMs splits further than a CPU device.
        var gpu = AttentionTuning.ForGpu(32, true, 49152, 256);
        Assert.True(AttentionPlan.Make(gpu, 1, 4095, 32, 4, 128, true, 0).Splits >= plan.Splits);
    }
}
