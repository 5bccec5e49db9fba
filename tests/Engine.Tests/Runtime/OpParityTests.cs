using Engine.Formats;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>Every shader against the CPU reference on fresh random inputs, at sizes that are not multiples of a workgroup.</summary>
public sealed class OpParityTests(BackendPair backends) : IClassFixture<BackendPair>
{
    private static float[] RandomValues(int count, double scale = 1.0) => WeightFormatChecks.RandomValues(count, scale);

    private (float[] Cpu, float[] Vulkan) Both(Func<IBackend, ITensor> op, int outputLength) => WeightFormatChecks.Both(backends, op, outputLength);

    private static void AssertClose(float[] expected, float[] actual, double relativeTolerance, string what) =>
        WeightFormatChecks.AssertClose(expected, actual, relativeTolerance, what);

    public static TheoryData<WeightType, int, int, int> LinearCases() => new()
    {
        { WeightType.F32, 1, 129, 515 },
        { WeightType.F16, 1, 67, 1000 },
        { WeightType.BF16, 1, 300, 77 },
        { WeightType.F32, 70, 131, 77 },
        { WeightType.F16, 5, 64, 64 },
        { WeightType.BF16, 129, 65, 259 },
        { WeightType.F16, 3, 1, 9 },
    };

    [Theory]
    [MemberData(nameof(LinearCases))]
    public void Linear_matches_reference(WeightType type, int tokens, int rows, int columns)
    {
        var info = new TensorInfo("w", [rows, columns], type);
        byte[] weights = WeightEncoders.Encode(type, "w", RandomValues(rows * columns), rows, columns).Data;
        float[] x = RandomValues(tokens * columns);
        float[] bias = RandomValues(rows);
        foreach (bool withBias in new[] { false, true })
        {
            var (cpu, gpu) = Both(be =>
            {
                var y = be.Allocate(tokens * rows);
                be.Linear(be.UploadMatrix(info, weights), withBias ? be.UploadVector(bias) : null, be.UploadVector(x), y, tokens);
                return y;
            }, tokens * rows);
            AssertClose(cpu, gpu, 1e-5, $"{type} linear {tokens}x[{rows},{columns}] bias={withBias}");
        }
    }

    [Fact]
    public void Linear_splits_a_matrix_larger_than_one_binding()
    {
        // 8200 x 4100 f32 is 134 MB: above lavapipe's 128 MiB storage-buffer range, so it is stored in two chunks.
        const int rows = 8200, columns = 4100;
        var info = new TensorInfo("big", [rows, columns], WeightType.F32);
        byte[] weights = WeightEncoders.Encode(WeightType.F32, "big", RandomValues(rows * columns), rows, columns).Data;
        float[] x = RandomValues(3 * columns);
        foreach (int tokens in new[] { 1, 3 })
        {
            var (cpu, gpu) = Both(be =>
            {
                var y = be.Allocate(tokens * rows);
                be.Linear(be.UploadMatrix(info, weights), null, be.UploadVector(x), y, tokens);
                return y;
            }, tokens * rows);
            AssertClose(cpu, gpu, 1e-5, $"chunked linear, {tokens} token(s)");
        }
    }

    [Theory]
    [InlineData(WeightType.F32)]
    [InlineData(WeightType.F16)]
    [InlineData(WeightType.BF16)]
    public void Embedding_matches_reference(WeightType type)
    {
        const int vocab = 301, dim = 75;
        var info = new TensorInfo("e", [vocab, dim], type);
        byte[] table = WeightEncoders.Encode(type, "e", RandomValues(vocab * dim), vocab, dim).Data;
        int[] tokens = [0, 300, 17, 17, 150, 299, 1];
        var (cpu, gpu) = Both(be =>
        {
            var o = be.Allocate(tokens.Length * dim);
            be.Embedding(be.UploadMatrix(info, table), tokens, o);
            return o;
        }, tokens.Length * dim);
        AssertClose(cpu, gpu, 0, $"{type} embedding");
    }

    [Theory]
    [InlineData(1, 384)]
    [InlineData(7, 65)]
    [InlineData(24, 16)]
    public void RmsNorm_matches_reference(int rows, int dim)
    {
        float[] x = RandomValues(rows * dim, 3);
        float[] w = RandomValues(dim);
        var (cpu, gpu) = Both(be =>
        {
            var t = be.UploadVector(x);
            be.RmsNorm(t, be.UploadVector(w), t, rows, dim, 1e-5f);
            return t;
        }, rows * dim);
        AssertClose(cpu, gpu, 1e-5, "rmsnorm");
    }

    [Theory]
    [InlineData(3, 50, 50, true)]     // plain layer norm with bias
    [InlineData(1, 384, 384, false)]
    [InlineData(8, 16, 64, true)]     // group norm: 2 vectors of 4 groups of 16
    [InlineData(6, 7, 21, false)]
    public void LayerNorm_matches_reference(int rows, int dim, int weightLength, bool withBias)
    {
        float[] x = RandomValues(rows * dim, 3);
        for (int i = 0; i < x.Length; i++) x[i] += 2;   // a mean far from zero
        float[] w = RandomValues(weightLength);
        float[] bias = RandomValues(weightLength);
        var (cpu, gpu) = Both(be =>
        {
            var t = be.UploadVector(x);
            be.LayerNorm(t, be.UploadVector(w), withBias ? be.UploadVector(bias) : null, t, rows, dim, 1e-5f);
            return t;
        }, rows * dim);
        AssertClose(cpu, gpu, 1e-5, "layernorm");

        // Hand-checked against the definition: row 0 is normalised and scaled by the first dim weights.
        double mean = x.Take(dim).Average(v => (double)v);
        double variance = x.Take(dim).Average(v => (v - mean) * (v - mean));
        double expected = (x[0] - mean) / Math.Sqrt(variance + 1e-5) * w[0] + (withBias ? bias[0] : 0);
        Assert.Equal(expected, cpu[0], 4);
    }

    [Fact]
    public void RmsNorm_with_a_weight_spanning_groups_matches_reference()
    {
        const int rows = 12, dim = 10, weightLength = 40;
        float[] x = RandomValues(rows * dim, 3);
        float[] w = RandomValues(weightLength);
        var (cpu, gpu) = Both(be =>
        {
            var y = be.Allocate(rows * dim);
            be.RmsNorm(be.UploadVector(x), be.UploadVector(w), y, rows, dim, 1e-6f);
            return y;
        }, rows * dim);
        AssertClose(cpu, gpu, 1e-5, "group rmsnorm");
        double rms = Math.Sqrt(x.Skip(5 * dim).Take(dim).Average(v => (double)v * v) + 1e-6);
        Assert.Equal(x[5 * dim + 3] / rms * w[(5 * dim + 3) % weightLength], cpu[5 * dim + 3], 4);
    }

    [Theory]
    [InlineData(RopeLayout.RotateHalf, 1, 4, 64, 37)]
    [InlineData(RopeLayout.Interleaved, 5, 3, 8, 0)]
    [InlineData(RopeLayout.RotateHalf, 9, 6, 18, 100)]
    public void Rope_matches_reference(RopeLayout layout, int tokens, int heads, int headDim, int pos0)
    {
        float[] x = RandomValues(tokens * heads * headDim);
        float[] table = RopeTable.Compute(pos0 + tokens, headDim, 10000.0);
        var (cpu, gpu) = Both(be =>
        {
            var t = be.UploadVector(x);
            be.Rope(t, be.UploadVector(table), tokens, heads, headDim, pos0, layout);
            return t;
        }, x.Length);
        AssertClose(cpu, gpu, 1e-6, $"rope {layout}");
    }

    private static float[] Read(IBackend be, ITensor tensor, int length)
    {
        var values = new float[length];
        be.Read(tensor, values);
        return values;
    }

    /// <summary>A half's bits as a number that orders like its value, so adjacent halves are one apart (across zero too).</summary>
    private static int HalfOrder(float value)
    {
        int bits = BitConverter.HalfToUInt16Bits((Half)value);
        return (bits & 0x8000) != 0 ? -(bits & 0x7FFF) : bits;
    }

    [Theory]
    [InlineData(RopeLayout.RotateHalf, 1, 4, 2, 64, 37, false)]   // decode, GQA
    [InlineData(RopeLayout.Interleaved, 5, 6, 3, 32, 0, true)]    // a prompt, with Qwen3's q/k norms
    [InlineData(RopeLayout.RotateHalf, 9, 4, 1, 128, 100, true)]
    [InlineData(RopeLayout.RotateHalf, 3, 2, 2, 256, 7, false)]
    [InlineData(RopeLayout.Interleaved, 2, 3, 1, 18, 4, false)]   // a head dim that is not a multiple of 4
    public void RopeKv_matches_across_backends_in_either_cache(RopeLayout layout, int tokens, int heads, int kvHeads, int headDim, int pos0, bool norms)
    {
        int qDim = heads * headDim, kvDim = kvHeads * headDim, rows = pos0 + tokens;
        float[] qkv = RandomValues(tokens * (qDim + 2 * kvDim), 4);
        float[] table = RopeTable.Compute(rows, headDim, 10000.0);
        float[] queryNorm = RandomValues(headDim, 2), keyNorm = RandomValues(headDim, 2);
        foreach (var cache in new[] { ElementType.F32, ElementType.F16 })
        {
            (float[] Q, float[] Keys, float[] Values) Run(IBackend be)
            {
                var q = be.Allocate(tokens * qDim);
                var keys = be.Allocate(rows * kvDim, cache);
                var values = be.Allocate(rows * kvDim, cache);
                be.RopeKv(be.UploadVector(qkv), be.UploadVector(table), q, keys, values, tokens, heads, kvHeads, headDim, pos0, 0, layout,
                    norms ? be.UploadVector(queryNorm) : null, norms ? be.UploadVector(keyNorm) : null, 1e-6f);
                return (Read(be, q, tokens * qDim), Read(be, keys, rows * kvDim), Read(be, values, rows * kvDim));
            }

            var cpu = Run(backends.Cpu);
            var gpu = Run(backends.Vulkan);
            string what = $"rope_kv {layout}, {cache} cache";
            AssertClose(cpu.Q, gpu.Q, 1e-5, $"{what}: queries");
            Assert.Equal(cpu.Values, gpu.Values);   // copied, and rounded alike
            if (cache == ElementType.F32)
                AssertClose(cpu.Keys, gpu.Keys, 1e-5, $"{what}: keys");
            else
            {
                // The rotation's last float bit may differ between backends, and move a key to the adjacent half.
                for (int i = 0; i < cpu.Keys.Length; i++)
                    Assert.True(Math.Abs(HalfOrder(cpu.Keys[i]) - HalfOrder(gpu.Keys[i])) <= 1, $"{what}: key {i} is {gpu.Keys[i]}, the CPU's {cpu.Keys[i]}");
            }
            if (cache == ElementType.F16)
                Assert.All(gpu.Keys.Concat(gpu.Values), x => Assert.Equal(x, (float)(Half)x));
        }
    }

    /// <summary>Floats and the halves an f16 tensor stores for them: IEEE round to nearest, ties to even.</summary>
    private static readonly (float Value, ushort Half)[] HalfRoundings =
    [
        (0f, 0x0000), (-0f, 0x8000), (1f, 0x3C00), (0.1f, 0x2E66), (-2.71828f, 0xC170), (1000.3f, 0x63D1),
        (1f + MathF.ScaleB(1f, -11), 0x3C00),                            // a tie: to the even neighbour below
        (1f + 3 * MathF.ScaleB(1f, -11), 0x3C02),                        // a tie: to the even neighbour above
        (1f + MathF.ScaleB(1f, -11) + MathF.ScaleB(1f, -20), 0x3C01),   // just past a tie
        (65504f, 0x7BFF), (65519.996f, 0x7BFF),                          // the largest half, and just below the tie to infinity
        (65520f, 0x7C00), (-70000f, 0xFC00), (float.PositiveInfinity, 0x7C00),
        (MathF.ScaleB(1f, -14), 0x0400),                                 // the smallest normal half
        (MathF.ScaleB(1f, -14) - MathF.ScaleB(1f, -25), 0x0400),        // a subnormal tie rounding up into the normals
        (MathF.ScaleB(1f, -15) + MathF.ScaleB(1f, -26), 0x0200),
        (MathF.ScaleB(1f, -24), 0x0001),                                 // the smallest subnormal
        (MathF.ScaleB(1f, -25), 0x0000),                                 // subnormal ties
        (3 * MathF.ScaleB(1f, -25), 0x0002),
        (-3 * MathF.ScaleB(1f, -25), 0x8002),
        (MathF.ScaleB(1f, -25) + MathF.ScaleB(1f, -40), 0x0001),
        (1e-10f, 0x0000), (3.14159f, 0x4248),
    ];

    [Fact]
    public void F16_tensors_store_the_nearest_half_ties_to_even_on_every_path()
    {
        float[] values = [.. HalfRoundings.Select(r => r.Value)];
        int n = values.Length;
        foreach (var be in new IBackend[] { backends.Cpu, backends.Vulkan })
        {
            // A host write (at an odd offset: within a word of a device's pair), a copy into a row of a cache
            // (Qwen2-VL's multimodal prologue), and RopeKv's store of v (one token, one head of n; q and k zeros).
            var written = be.Allocate(n + 1, ElementType.F16);
            be.Write(written, 1, values);
            var copied = be.Allocate(n + 2, ElementType.F16);
            be.CopyRows(be.UploadVector(values), 0, n, copied, 2, n, n, 1);
            var keys = be.Allocate(n, ElementType.F16);
            var stored = be.Allocate(n, ElementType.F16);
            be.RopeKv(be.UploadVector([.. new float[2 * n], .. values]), be.UploadVector(RopeTable.Compute(1, n, 10000.0)), be.Allocate(n), keys, stored,
                1, 1, 1, n, 0, 0, RopeLayout.RotateHalf, null, null, 1e-6f);
            foreach (var (path, result) in new[] { ("write", Read(be, written, n + 1)[1..]), ("copy", Read(be, copied, n + 2)[2..]), ("rope_kv", Read(be, stored, n)) })
            {
                for (int i = 0; i < n; i++)
                    Assert.True(BitConverter.HalfToUInt16Bits((Half)result[i]) == HalfRoundings[i].Half,
                        $"{be.Name} {path}: {values[i]:R} stored as {result[i]:R}, not the half 0x{HalfRoundings[i].Half:X4}");
            }
        }
    }

    [Fact]
    public void F16_tensors_are_refused_alike_where_an_op_takes_float32()
    {
        foreach (var be in new IBackend[] { backends.Cpu, backends.Vulkan })
        {
            var floats = be.Allocate(16);
            var halves = be.Allocate(16, ElementType.F16);
            Assert.Throws<ArgumentException>(() => be.Binary(BinaryOp.Add, floats, floats, halves, 16, 16));
            Assert.Throws<ArgumentException>(() => be.RmsNorm(halves, floats, floats, 1, 16, 1e-6f));
            Assert.Throws<ArgumentException>(() => be.CopyRows(halves, 0, 16, floats, 0, 16, 16, 1));
            // Into halves, whole pairs only: a device stores two per word.
            Assert.Throws<ArgumentException>(() => be.CopyRows(floats, 0, 3, halves, 0, 4, 3, 2));
            Assert.Throws<ArgumentException>(() => be.CopyRows(floats, 0, 4, halves, 1, 4, 4, 2));
            be.CopyRows(floats, 0, 4, halves, 2, 6, 4, 2);
        }
    }

    [Theory]
    [InlineData(1, 0, 4, 2, 16)]     // first token
    [InlineData(1, 130, 6, 2, 64)]   // decode with a cache longer than two chunks
    [InlineData(12, 0, 4, 4, 16)]    // prefill, no GQA
    [InlineData(70, 5, 8, 2, 100)]   // prefill after earlier tokens, head dim not a multiple of 64
    [InlineData(2, 3, 2, 1, 256)]    // largest head dim
    public void Attention_matches_reference(int tokens, int pos0, int heads, int kvHeads, int headDim)
    {
        int length = pos0 + tokens;
        float[] q = RandomValues(tokens * heads * headDim);
        float[] k = RandomValues(length * kvHeads * headDim);
        float[] v = RandomValues(length * kvHeads * headDim);
        float scale = 1f / MathF.Sqrt(headDim);
        var (cpu, gpu) = Both(be =>
        {
            var o = be.Allocate(q.Length);
            be.Attention(be.UploadVector(q), be.UploadVector(k), be.UploadVector(v), o, tokens, pos0, heads, kvHeads, headDim, scale);
            return o;
        }, q.Length);
        AssertClose(cpu, gpu, 1e-5, "attention");
    }

    [Theory]
    [InlineData(1, 0, 2, 16)]
    [InlineData(17, 0, 3, 40)]     // a ViT's patches and CLS
    [InlineData(5, 9, 4, 64)]
    public void Noncausal_attention_matches_reference(int tokens, int pos0, int heads, int headDim)
    {
        int length = pos0 + tokens;
        float[] q = RandomValues(tokens * heads * headDim);
        float[] k = RandomValues(length * heads * headDim);
        float[] v = RandomValues(length * heads * headDim);
        var (cpu, gpu) = Both(be =>
        {
            var o = be.Allocate(q.Length);
            be.Attention(be.UploadVector(q), be.UploadVector(k), be.UploadVector(v), o, tokens, pos0, heads, heads, headDim, 0.3f, causal: false);
            return o;
        }, q.Length);
        AssertClose(cpu, gpu, 1e-5, "non-causal attention");

        // The first query sees the last position: its output differs from the causal one.
        var causal = Both(be =>
        {
            var o = be.Allocate(q.Length);
            be.Attention(be.UploadVector(q), be.UploadVector(k), be.UploadVector(v), o, tokens, pos0, heads, heads, headDim, 0.3f);
            return o;
        }, q.Length).Cpu;
        if (tokens > 1) Assert.NotEqual(causal[0], cpu[0]);
        Assert.Equal(causal[^1], cpu[^1], 5);
    }

    public static TheoryData<Activation> Activations() => new(Enum.GetValues<Activation>());

    [Theory]
    [MemberData(nameof(Activations))]
    public void Activate_matches_reference(Activation function)
    {
        const int count = 5003;
        float[] x = RandomValues(count, 12);
        x[0] = 0; x[1] = 25; x[2] = -25; x[3] = 1;
        if (function == Activation.Exp) for (int i = 0; i < count; i++) x[i] = Math.Clamp(x[i], -30, 30);
        var (cpu, gpu) = Both(be =>
        {
            var t = be.UploadVector(x);
            be.Activate(function, t, t, count);
            return t;
        }, count);
        AssertClose(cpu, gpu, 2e-6, function.ToString());

        // The reference itself at x = 1, from the definitions.
        double one = function switch
        {
            Activation.Silu => 1 / (1 + Math.Exp(-1)),
            Activation.Gelu => 0.8413447460685429,
            Activation.GeluTanh => 0.5 * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * 1.044715)),
            Activation.QuickGelu => 1 / (1 + Math.Exp(-1.702)),
            Activation.Sigmoid => 1 / (1 + Math.Exp(-1)),
            Activation.Softplus => Math.Log(1 + Math.E),
            Activation.ReluSquared => 1,
            Activation.Tanh => Math.Tanh(1),
            Activation.Exp => Math.E,
            _ => throw new ArgumentOutOfRangeException(nameof(function)),
        };
        Assert.Equal(one, cpu[3], 6);
        Assert.True(float.IsFinite(gpu[1]) && float.IsFinite(gpu[2]), $"{function} overflows at ±25");
    }

    [Theory]
    [InlineData(BinaryOp.Add, 1000, 1000)]
    [InlineData(BinaryOp.Sub, 999, 333)]
    [InlineData(BinaryOp.Mul, 70001, 7)]
    public void Binary_broadcasts_and_matches_reference(BinaryOp op, int count, int bLength)
    {
        float[] a = RandomValues(count);
        float[] b = RandomValues(bLength);
        var (cpu, gpu) = Both(be =>
        {
            var o = be.Allocate(count);
            be.Binary(op, be.UploadVector(a), be.UploadVector(b), o, count, bLength);
            return o;
        }, count);
        AssertClose(cpu, gpu, 0, op.ToString());
        int last = count - 1;
        float expected = op switch { BinaryOp.Add => a[last] + b[last % bLength], BinaryOp.Sub => a[last] - b[last % bLength], _ => a[last] * b[last % bLength] };
        Assert.Equal(expected, gpu[last]);
    }

    [Fact]
    public void CopyRows_and_Write_match_reference()
    {
        // Split the middle 3 columns out of rows of 10 into a buffer with rows of 4, starting at 1.
        const int rows = 301, sourceStride = 10, width = 3, destinationStride = 4;
        float[] source = RandomValues(rows * sourceStride + 2);
        float[] patch = RandomValues(7);
        var (cpu, gpu) = Both(be =>
        {
            var o = be.Allocate(1 + rows * destinationStride);
            be.CopyRows(be.UploadVector(source), 2 + 4, sourceStride, o, 1, destinationStride, width, rows);
            be.Write(o, 20, patch);
            return o;
        }, 1 + rows * destinationStride);
        AssertClose(cpu, gpu, 0, "copy rows");
        Assert.Equal(source[6 + 200 * sourceStride + 2], gpu[1 + 200 * destinationStride + 2]);
        Assert.Equal(0f, gpu[1 + 200 * destinationStride + 3]);
        Assert.Equal(patch, gpu.AsSpan(20, 7).ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(1000)]
    [InlineData(70001)]
    public void Elementwise_ops_match_reference(int count)
    {
        float[] a = RandomValues(count, 8);
        float[] b = RandomValues(count);
        var (cpu, gpu) = Both(be =>
        {
            var o = be.Allocate(count);
            be.SwiGlu(be.UploadVector(a), be.UploadVector(b), o, count);
            return o;
        }, count);
        AssertClose(cpu, gpu, 1e-6, "swiglu");

        (cpu, gpu) = Both(be =>
        {
            var o = be.UploadVector(a);
            be.Add(o, be.UploadVector(b), o, count);
            return o;
        }, count);
        AssertClose(cpu, gpu, 0, "add");

        int offset = count / 3;
        (cpu, gpu) = Both(be =>
        {
            var o = be.Allocate(count + 5);
            be.Copy(be.UploadVector(a), offset, o, 5, count - offset);
            return o;
        }, count + 5);
        AssertClose(cpu, gpu, 0, "copy");
        Assert.Equal(a[offset], gpu[5]);
    }

    [Theory]
    [InlineData(1, 4096)]
    [InlineData(5, 77)]
    public void Softmax_matches_reference(int rows, int cols)
    {
        float[] x = RandomValues(rows * cols, 20);
        var (cpu, gpu) = Both(be =>
        {
            var t = be.UploadVector(x);
            be.Softmax(t, rows, cols);
            return t;
        }, x.Length);
        AssertClose(cpu, gpu, 1e-6, "softmax");
        Assert.Equal(1.0, gpu.Take(cols).Sum(v => (double)v), 4);
    }
}
