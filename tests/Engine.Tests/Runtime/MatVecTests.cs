using Engine.Formats;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Runtime.Vulkan;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// The Vulkan mat-vec (matvec.comp) against the CPU reference on fresh random inputs: every format at every token
/// count it takes (1 to 8, each weight read once for all), rows and columns off every block and workgroup size, inputs
/// read as vec4 or one by one; and each reduction a device may get (one subgroup, subgroups then shared memory, the
/// shared-memory tree of devices without subgroup arithmetic), with the fusions and the expert variant.
/// </summary>
public sealed class MatVecTests(BackendPair backends) : IClassFixture<BackendPair>
{
    public static TheoryData<string> Formats() => ProductFusionTests.Formats();

    /// <summary>Tunings this device can run: its own, then the other reductions and row counts (lavapipe has subgroups of 8).</summary>
    private static IEnumerable<MatVecTuning> Tunings(MatVecTuning own) =>
    [
        own,
        own with { Workgroup = 8, Rows = 4, LowBitRows = 4, SubgroupReduce = false, OneSubgroup = false },     // shared-memory tree
        own with { Workgroup = 32, Rows = 2, LowBitRows = 4, OneSubgroup = false },                          // subgroups, then across them
        own with { Workgroup = 16, Rows = 6, LowBitRows = 6, SubgroupReduce = false, OneSubgroup = false, MaxColumns = 3 },
    ];

    [Theory]
    [MemberData(nameof(Formats))]
    public void Every_token_count_up_to_8_matches_the_reference(string formatName)
    {
        Assert.True(WeightTypes.TryGet(formatName, out var format));
        Assert.Equal(MatVecTuning.ColumnLimit, backends.Vulkan.MatVec.MaxColumns);
        // 200 columns: a last block cut short, vec4 inputs; 203: inputs one by one. 37 rows: a last workgroup cut short.
        foreach (int columns in new[] { 200, 203 })
        {
            var encoded = WeightFormatChecks.Encode(format.Type, format.DefaultParameters, 37, columns);
            foreach (int tokens in new[] { 1, 2, 5, 8 })
                WeightFormatChecks.LinearMatchesReference(backends, encoded, tokens);
        }
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("f16")]
    [InlineData("q4")]
    [InlineData("q3")]
    [InlineData("sefp")]
    [InlineData("binary")]
    [InlineData("pcdvq")]
    public void Every_reduction_matches_the_reference_with_fusions(string formatName)
    {
        Assert.True(WeightTypes.TryGet(formatName, out var format));
        const int rows = 46, columns = 300;   // SwiGLU pairs; 46 is no multiple of 4 or 6 rows per workgroup
        var encoded = WeightFormatChecks.Encode(format.Type, format.DefaultParameters, rows, columns);
        using var shared = new InMemoryTensors(encoded.Companions);
        float[] norm = WeightFormatChecks.RandomValues(columns, 2);
        float[] bias = WeightFormatChecks.RandomValues(rows);
        var own = backends.Vulkan.MatVec;
        try
        {
            foreach (var tuning in Tunings(own))
            {
                backends.Vulkan.MatVec = tuning;
                foreach (int tokens in new[] { 1, 3 })
                {
                    float[] x = WeightFormatChecks.RandomValues(tokens * columns, 3);
                    float[] residual = WeightFormatChecks.RandomValues(tokens * rows);
                    var (cpu, gpu) = WeightFormatChecks.Both(backends, be =>
                    {
                        var y = be.UploadVector(residual);
                        var fusion = ProductFusion.RmsNormed(be.UploadVector(norm), 1e-5f) with { SwiGlu = true, Accumulate = true };
                        be.Linear(be.UploadMatrix(encoded.Info, encoded.Data, shared), be.UploadVector(bias), be.UploadVector(x), y, tokens, fusion);
                        return y;
                    }, tokens * rows);
                    WeightFormatChecks.AssertClose(cpu, gpu, 2e-4, $"{formatName} {tuning}, {tokens} token(s), norm + SwiGLU + accumulate");
                    WeightFormatChecks.LinearMatchesReference(backends, encoded, tokens);
                }
            }
        }
        finally
        {
            backends.Vulkan.MatVec = own;
        }
    }

    [Theory]
    [InlineData("q4")]
    [InlineData("pcdvq")]
    public void Every_reduction_runs_the_expert_variant(string formatName)
    {
        Assert.True(WeightTypes.TryGet(formatName, out var format));
        const int experts = 4, rows = 37, columns = 96, k = 2;
        var encoded = Enumerable.Range(0, experts).Select(e =>
            WeightEncoders.Encode(format.Type, $"experts.{e}", WeightFormatChecks.RandomValues(rows * columns), rows, columns, format.DefaultParameters)).ToArray();
        using var shared = new InMemoryTensors(encoded.SelectMany(x => x.Companions).DistinctBy(c => c.Info.Name));
        float[] logits = WeightFormatChecks.RandomValues(experts, 4);
        float[] x = WeightFormatChecks.RandomValues(columns);
        var own = backends.Vulkan.MatVec;
        try
        {
            foreach (var tuning in Tunings(own))
            {
                backends.Vulkan.MatVec = tuning;
                var (cpu, gpu) = WeightFormatChecks.Both(backends, be =>
                {
                    var routing = be.Allocate(MoeRouting.Length(1, k, experts));
                    be.MoeRoute(be.UploadVector(logits), routing, 1, experts, k, true, 1f);
                    var y = be.Allocate(k * rows);
                    var stack = be.UploadExperts([.. encoded.Select(e => e.Info)], [.. encoded.Select(e => e.Data)], shared);
                    be.ExpertLinear(stack, experts, routing, be.UploadVector(x), y, 1, k, inputPerSlot: false);
                    return y;
                }, k * rows);
                WeightFormatChecks.AssertClose(cpu, gpu, 1e-4, $"{formatName} experts, {tuning}");
            }
        }
        finally
        {
            backends.Vulkan.MatVec = own;
        }
    }

    [Fact]
    public void This_device_gets_its_tuning()
    {
        var context = backends.Vulkan.Context;
        var tuning = backends.Vulkan.MatVec;
        Assert.Equal(context.Features.SubgroupArithmetic, tuning.SubgroupReduce);
        if (context.Info.IsCpu && tuning.SubgroupReduce)
        {
            // lavapipe: one subgroup of 8 lanes per workgroup, so no barrier; many rows share each input load.
            Assert.Equal(context.Features.SubgroupSize, tuning.Workgroup);
            Assert.True(tuning.OneSubgroup);
            Assert.Equal(16u, tuning.Rows);
            Assert.Equal(16u, tuning.LowBitRows);
        }
    }

    [Fact]
    public void Defaults_follow_the_device_kind()
    {
        Assert.Equal(new MatVecTuning(8, 16, 16, true, true, 8), MatVecTuning.Default(cpu: true, subgroupSize: 8, subgroupArithmetic: true));
        Assert.Equal(new MatVecTuning(8, 16, 16, false, false, 8), MatVecTuning.Default(cpu: true, subgroupSize: 8, subgroupArithmetic: false));
        Assert.Equal(new MatVecTuning(128, 2, 4, true, false, 8), MatVecTuning.Default(cpu: false, subgroupSize: 32, subgroupArithmetic: true));   // NVIDIA
        Assert.Equal(new MatVecTuning(256, 2, 4, true, false, 8), MatVecTuning.Default(cpu: false, subgroupSize: 64, subgroupArithmetic: true));   // AMD wave64
        Assert.Equal(new MatVecTuning(128, 2, 4, false, false, 8), MatVecTuning.Default(cpu: false, subgroupSize: 32, subgroupArithmetic: false));
        Assert.Equal(["matvec_", "matvec_shared_"], [MatVecTuning.Default(true, 8, true).Variant("matvec_"), MatVecTuning.Default(true, 8, false).Variant("matvec_")]);
    }

    [Fact]
    public void Overrides_replace_the_fields_they_name()
    {
        var gpu = MatVecTuning.Default(cpu: false, subgroupSize: 32, subgroupArithmetic: true);
        Assert.Equal(gpu with { Workgroup = 64, Rows = 4, LowBitRows = 4 }, gpu.With("workgroup=64, rows=4"));
        Assert.Equal(gpu with { LowBitRows = 8 }, gpu.With("lowbitrows=8"));
        Assert.Equal(2u, gpu.RowsFor(16));   // f16
        Assert.Equal(2u, gpu.RowsFor(9));    // q8 g32
        Assert.Equal(4u, gpu.RowsFor(5));    // q4 g32
        Assert.Equal(gpu with { SubgroupReduce = false, MaxColumns = 0 }, gpu.With("reduce=shared,columns=0"));
        Assert.Equal(gpu, gpu.With("") );
        var cpu = MatVecTuning.Default(cpu: true, subgroupSize: 8, subgroupArithmetic: true);
        Assert.False(cpu.With("workgroup=32").OneSubgroup);   // several subgroups: the shared-memory step comes back
        Assert.True(cpu.With("workgroup=8").OneSubgroup);
        foreach (string bad in new[] { "rows=3", "rows=0", "lowbitrows=5", "workgroup=48", "columns=9", "speed=fast" })
            Assert.Throws<ArgumentException>(() => gpu.With(bad));
        Assert.Throws<ArgumentException>(() => MatVecTuning.Default(true, 8, false).With("reduce=subgroup"));
    }

    [Fact]
    public void Constants_follow_the_dispatch()
    {
        var tuning = new MatVecTuning(8, 16, 16, true, true, 8);
        Assert.Equal([8u, 16u, 3u, 1u, 1u, WeightPush.FuseNorm], tuning.Constants(16, 3, 4096, WeightPush.FuseNorm));
        Assert.Equal([8u, 4u, 1u, 1u, 0u, 0u], tuning.Constants(4, 1, 203, 0));
        Assert.Equal(3u, MatVecTuning.Groups(37, 16));
    }
}
