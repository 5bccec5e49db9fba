using System.Diagnostics;
using Engine.Formats;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Runtime.Vulkan;
using Engine.Tests.Formats;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Runtime;

/// <summary>
/// The mat-mat shader (matmul.comp) at every tiling the backend may choose, forced on this device: the direct path
/// CPU devices get and the staged (shared-memory, double-buffered) and split-k paths GPUs get, against the CPU
/// reference on fresh random inputs: odd shapes (rows and tokens not a multiple of the tile, columns not a multiple
/// of the slab or of 4), every fusion combination with and without bias, every weight format, and the experts variant.
/// </summary>
public sealed class MatMulTests(BackendPair backends, ITestOutputHelper output) : IClassFixture<BackendPair>
{
    /// <summary>Tilings by name: the device's own choice, the direct path at small blocks, and the GPU choices.</summary>
    private static readonly Dictionary<string, MatMulTiling?> Tilings = new()
    {
        ["device"] = null,
        ["direct 8x8 lanes of 4x4"] = new MatMulTiling(8, 8, 4, 4, 0),
        ["direct 2x4 lanes of 8x4"] = new MatMulTiling(8, 2, 8, 4, 0),
        ["direct cpu 128x32"] = new MatMulTiling(8, 4, 32, 16, 0),
        ["gpu 128x128"] = new MatMulTiling(256, 16, 8, 8, 8),
        ["gpu 128x64"] = new MatMulTiling(256, 16, 8, 4, 8),
        ["gpu 64x32"] = new MatMulTiling(128, 16, 4, 4, 8),
        ["staged 64x64 slab 16"] = new MatMulTiling(64, 8, 8, 8, 16),
        ["split-k 3 of 64x32"] = new MatMulTiling(128, 16, 4, 4, 8, 3),
        ["split-k 2 of 128x128"] = new MatMulTiling(256, 16, 8, 8, 8, 2),
    };

    public static TheoryData<string> TilingNames() => [.. Tilings.Keys];

    public static TheoryData<string> Formats() => ProductFusionTests.Formats();

    private void WithTiling(string tiling, Action action)
    {
        backends.Vulkan.MatMulTilingOverride = Tilings[tiling];
        try
        {
            action();
        }
        finally
        {
            backends.Vulkan.MatMulTilingOverride = null;
        }
    }

    /// <summary>y (pre-filled with a residual) after a fused product, on both backends.</summary>
    private (float[] Cpu, float[] Vulkan) Product(EncodedTensor encoded, int tokens, float[] x, float[]? bias, float[]? norm, bool swiglu, bool accumulate, float[] residual)
    {
        using var shared = new InMemoryTensors(encoded.Companions);
        int outputs = residual.Length;
        return WeightFormatChecks.Both(backends, be =>
        {
            var fusion = new ProductFusion { Norm = norm is null ? null : be.UploadVector(norm), NormEps = 1e-5f, SwiGlu = swiglu, Accumulate = accumulate };
            var y = be.UploadVector(residual);
            be.Linear(be.UploadMatrix(encoded.Info, encoded.Data, shared), bias is null ? null : be.UploadVector(bias), be.UploadVector(x), y, tokens, fusion);
            return y;
        }, outputs);
    }

    [Theory]
    [MemberData(nameof(TilingNames))]
    public void Every_fusion_and_odd_shape_matches_the_cpu_reference(string tiling) => WithTiling(tiling, () =>
    {
        // Rows: a partial tile (74: outputs not 16-byte aligned, one output at a time), a pair of rows, several tiles
        // plus a remainder (264: aligned blocks of 4 outputs). Columns: not a multiple of 8, not a multiple of 4 (scalar
        // input reads), several slabs. Tokens: 9 (the mat-vec takes up to 8) to 300.
        foreach (var (rows, columns) in new[] { (74, 204), (6, 77), (264, 136) })
        {
            var encoded = WeightFormatChecks.Encode(WeightType.Q4, WeightTypes.Get(WeightType.Q4).DefaultParameters, rows, columns);
            float[] norm = WeightFormatChecks.RandomValues(columns, 2), bias = WeightFormatChecks.RandomValues(rows);
            foreach (int tokens in new[] { 9, 37, 300 })  // above the mat-vec's 8 columns
            {
                float[] x = WeightFormatChecks.RandomValues(tokens * columns, 3);
                for (int f = 0; f < 8; f++)
                {
                    bool withNorm = (f & 1) != 0, swiglu = (f & 2) != 0, accumulate = (f & 4) != 0;
                    float[] residual = WeightFormatChecks.RandomValues(tokens * (swiglu ? rows / 2 : rows));
                    foreach (bool withBias in new[] { false, true })
                    {
                        var (cpu, gpu) = Product(encoded, tokens, x, withBias ? bias : null, withNorm ? norm : null, swiglu, accumulate, residual);
                        WeightFormatChecks.AssertClose(cpu, gpu, 2e-4,
                            $"{tiling}: {tokens}x[{rows},{columns}] norm={withNorm} swiglu={swiglu} accumulate={accumulate} bias={withBias}");
                    }
                }
            }
        }
    });

    [Theory]
    [MemberData(nameof(Formats))]
    public void Every_format_matches_on_the_gpu_tilings(string formatName)
    {
        Assert.True(WeightTypes.TryGet(formatName, out var format));
        const int rows = 74, columns = 200;
        var encoded = WeightFormatChecks.Encode(format.Type, format.DefaultParameters, rows, columns);
        float[] norm = WeightFormatChecks.RandomValues(columns, 2), bias = WeightFormatChecks.RandomValues(rows);
        foreach (string tiling in new[] { "gpu 128x128", "split-k 3 of 64x32", "direct 2x4 lanes of 8x4" })
            WithTiling(tiling, () =>
            {
                foreach (int tokens in new[] { 9, 70 })
                {
                    float[] x = WeightFormatChecks.RandomValues(tokens * columns, 3);
                    var plain = Product(encoded, tokens, x, null, null, false, false, new float[tokens * rows]);
                    WeightFormatChecks.AssertClose(plain.Cpu, plain.Vulkan, 1e-4, $"{formatName} {tiling} {tokens} tokens");
                    var fused = Product(encoded, tokens, x, bias, norm, true, true, WeightFormatChecks.RandomValues(tokens * rows / 2));
                    WeightFormatChecks.AssertClose(fused.Cpu, fused.Vulkan, 2e-4, $"{formatName} {tiling} {tokens} tokens, all fusions");
                }
            });
    }

    [Theory]
    [MemberData(nameof(TilingNames))]
    public void Experts_match_the_cpu_reference(string tiling) => WithTiling(tiling, () =>
    {
        const int experts = 5, columns = 130, k = 2;
        foreach (var (type, rows) in new[] { (WeightType.F16, 67), (WeightType.Q4, 68) })
        {
            var format = WeightTypes.Get(type);
            var encoded = Enumerable.Range(0, experts).Select(e =>
                WeightEncoders.Encode(type, $"experts.{e}", WeightFormatChecks.RandomValues(rows * columns), rows, columns, format.DefaultParameters)).ToArray();
            using var shared = new InMemoryTensors(encoded.SelectMany(x => x.Companions).DistinctBy(c => c.Info.Name));
            foreach (int tokens in new[] { 3, 40 })
            {
                foreach (bool inputPerSlot in new[] { false, true })
                {
                    float[] logits = WeightFormatChecks.RandomValues(tokens * experts, 4);
                    float[] x = WeightFormatChecks.RandomValues(tokens * (inputPerSlot ? k : 1) * columns);
                    var (cpu, gpu) = WeightFormatChecks.Both(backends, be =>
                    {
                        var routing = be.Allocate(MoeRouting.Length(tokens, k, experts));
                        be.MoeRoute(be.UploadVector(logits), routing, tokens, experts, k, true, 1f);
                        var y = be.Allocate(tokens * k * rows);
                        var stack = be.UploadExperts([.. encoded.Select(e => e.Info)], [.. encoded.Select(e => e.Data)], shared);
                        be.ExpertLinear(stack, experts, routing, be.UploadVector(x), y, tokens, k, inputPerSlot);
                        return y;
                    }, tokens * k * rows);
                    WeightFormatChecks.AssertClose(cpu, gpu, 1e-4, $"{tiling}: {format.Name} experts, {tokens} tokens, input per slot {inputPerSlot}");
                }
            }
        }
    });

    [Theory]
    [InlineData("device", 1)]
    [InlineData("gpu 128x128", 1)]
    [InlineData("split-k 3 of 64x32", 2)]
    public void A_product_is_one_dispatch_and_split_k_adds_its_reduction(string tiling, int dispatches) => WithTiling(tiling, () =>
    {
        const int rows = 40, columns = 96, tokens = 9;
        var encoded = WeightFormatChecks.Encode(WeightType.F16, WeightTypes.Get(WeightType.F16).DefaultParameters, rows, columns);
        var be = backends.Vulkan;
        var w = be.UploadMatrix(encoded.Info, encoded.Data);
        var x = be.UploadVector(WeightFormatChecks.RandomValues(tokens * columns));
        var y = be.Allocate(tokens * rows);
        be.Read(y, new float[1]);
        be.Recorder.ResetCounters();
        be.Linear(w, null, x, y, tokens);
        Assert.Equal(dispatches, be.Recorder.DispatchCount);
        be.Read(y, new float[1]);
    });

    private static VulkanDeviceInfo Device(string kind, uint subgroup) =>
        new(0, kind, kind, "1.3", 1L << 34, 1UL << 31, subgroup, DeviceFeatures.None);

    [Fact]
    public void Tilings_are_chosen_per_device_and_shape()
    {
        var cpu = Device("CPU", 8);
        var gpu = Device("DiscreteGpu", 32);
        // CPU devices: the direct path, one subgroup per workgroup, 128-row tiles.
        foreach (int tokens in new[] { 2, 5, 12, 70, 512 })
        {
            var t = MatMulTiling.Choose(cpu, 1024, 384, tokens, experts: false);
            Assert.False(t.Staged);
            Assert.Equal(8u, t.Workgroup);
            Assert.Equal(128u, t.TileRows);
            Assert.Equal(1u, t.Split);
            Assert.True(t.TileTokens >= Math.Min(tokens, 16), $"{tokens} tokens: {t}");
        }
        // GPUs: staged 128 x 128 for long batches, smaller token tiles for short ones.
        var large = MatMulTiling.Choose(gpu, 4096, 4096, 512, experts: false);
        Assert.Equal(new MatMulTiling(256, 16, 8, 8, 8), large);
        Assert.Equal((128u, 128u), (large.TileRows, large.TileTokens));
        Assert.Equal(64u, MatMulTiling.Choose(gpu, 4096, 4096, 64, experts: false).TileTokens);
        Assert.Equal(32u, MatMulTiling.Choose(gpu, 4096, 4096, 7, experts: false).TileTokens);
        // Split-k where the tiles leave the GPU idle and the rows are long; never for experts or short rows.
        var few = MatMulTiling.Choose(gpu, 1024, 14336, 16, experts: false);
        Assert.True(few.Split >= 2, few.ToString());
        Assert.Equal(1u, MatMulTiling.Choose(gpu, 1024, 14336, 16, experts: true).Split);
        Assert.Equal(1u, MatMulTiling.Choose(gpu, 1024, 1024, 16, experts: false).Split);
        Assert.Equal(1u, large.Split);
        // Every choice fits 32 KiB of shared memory (lavapipe's limit, so these tests run each one here) and validates.
        foreach (var device in new[] { cpu, gpu })
            foreach (int tokens in new[] { 1, 2, 20, 40, 100, 4000 })
                foreach (int columns in new[] { 64, 4096, 30000 })
                    MatMulTiling.Choose(device, 300, columns, tokens, experts: false).Check(32768);
    }

    [Fact]
    public void Invalid_tilings_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new MatMulTiling(8, 3, 4, 4, 0).Check(32768));          // not a grid
        Assert.Throws<ArgumentException>(() => new MatMulTiling(8, 8, 6, 4, 0).Check(32768));          // rows not a multiple of 4
        Assert.Throws<ArgumentException>(() => new MatMulTiling(8, 8, 4, 4, 0, Split: 2).Check(32768)); // split-k needs slabs
        Assert.Throws<ArgumentException>(() => new MatMulTiling(256, 16, 8, 8, 12).Check(32768));      // slab not a multiple of 8
        Assert.Throws<ArgumentException>(() => new MatMulTiling(256, 16, 8, 8, 32).Check(32768));      // 66 KiB of shared memory
    }

    [Fact]
    public void Overrides_replace_the_named_fields()
    {
        var tiling = new MatMulTiling(256, 16, 8, 8, 8);
        Assert.Equal(tiling, tiling.With(null));
        Assert.Equal(new MatMulTiling(128, 8, 8, 4, 16, 2), tiling.With("workgroup=128, rowthreads=8,tokens=4,depth=16,split=2"));
        Assert.Equal(tiling, tiling.With(tiling.ToString()));
        Assert.Throws<ArgumentException>(() => tiling.With("rows"));
        Assert.Throws<ArgumentException>(() => tiling.With("slab=16"));
    }

    /// <summary>
    /// GFLOP/s of the device's tiling on the tinyprose-14m prefill shapes (512 tokens), when ENGINE_MATMUL_BENCH=1;
    /// otherwise nothing. Wall time of many products in one submission, after a warm-up that compiles the pipeline.
    /// </summary>
    [Fact]
    public void Benchmark()
    {
        if (Environment.GetEnvironmentVariable("ENGINE_MATMUL_BENCH") != "1") return;
        const int tokens = 512, repeats = 4;
        var be = backends.Vulkan;
        foreach (var type in new[] { WeightType.F16, WeightType.Q4 })
        {
            double totalFlops = 0, totalSeconds = 0;
            foreach (var (rows, columns, norm, swiglu) in new[] { (1152, 384, true, false), (384, 384, false, false), (2048, 384, true, true), (384, 1024, false, false) })
            {
                var encoded = WeightFormatChecks.Encode(type, WeightTypes.Get(type).DefaultParameters, rows, columns);
                var w = be.UploadMatrix(encoded.Info, encoded.Data);
                var x = be.UploadVector(WeightFormatChecks.RandomValues(tokens * columns));
                var y = be.Allocate(tokens * rows);
                var fusion = new ProductFusion { Norm = norm ? be.UploadVector(WeightFormatChecks.RandomValues(columns)) : null, NormEps = 1e-5f, SwiGlu = swiglu };
                be.Linear(w, null, x, y, tokens, fusion);
                be.Read(y, new float[1]);
                var clock = Stopwatch.StartNew();
                for (int i = 0; i < repeats; i++) be.Linear(w, null, x, y, tokens, fusion);
                be.Read(y, new float[1]);
                double seconds = clock.Elapsed.TotalSeconds / repeats, flops = 2.0 * rows * columns * tokens;
                totalFlops += flops;
                totalSeconds += seconds;
                output.WriteLine($"{type} {tokens}x[{rows},{columns}]: {seconds * 1e3:F1} ms, {flops / seconds / 1e9:F2} GFLOP/s");
            }
            output.WriteLine($"{type} all: {totalSeconds * 1e3:F1} ms, {totalFlops / totalSeconds / 1e9:F2} GFLOP/s");
        }
    }
}
