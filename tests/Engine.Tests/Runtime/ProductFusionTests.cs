using Engine.Formats;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// The fused products of a decode graph (<see cref="ProductFusion"/>) for every weight format, on fresh random
/// inputs: Vulkan against the CPU reference, and the CPU reference against the same ops run one by one.
/// </summary>
public sealed class ProductFusionTests(BackendPair backends) : IClassFixture<BackendPair>
{
    public static TheoryData<string> Formats()
    {
        var data = new TheoryData<string>();
        foreach (var format in WeightTypes.All)
        {
            try
            {
                WeightEncoders.Get(format.Type);
                data.Add(format.Name);
            }
            catch (NotSupportedException)
            {
            }
        }
        return data;
    }

    private static readonly ProductFusion[] Fusions =
    [
        new() { NormEps = 1e-5f },   // a norm weight is filled in below
        new() { NormEps = 1e-5f, SwiGlu = true },
        new() { Accumulate = true },
        new() { SwiGlu = true },
        new() { NormEps = 1e-6f, SwiGlu = true, Accumulate = true },
    ];

    [Theory]
    [MemberData(nameof(Formats))]
    public void Fused_products_match_the_cpu_reference(string formatName)
    {
        Assert.True(WeightTypes.TryGet(formatName, out var format));
        const int rows = 74, columns = 200;   // odd group and tile remainders; rows pair up for SwiGLU
        var encoded = WeightFormatChecks.Encode(format.Type, format.DefaultParameters, rows, columns);
        using var shared = new InMemoryTensors(encoded.Companions);
        float[] norm = WeightFormatChecks.RandomValues(columns, 2);
        float[] bias = WeightFormatChecks.RandomValues(rows);
        foreach (int tokens in new[] { 1, 3, 70 })
        {
            float[] x = WeightFormatChecks.RandomValues(tokens * columns, 3);
            float[] residual = WeightFormatChecks.RandomValues(tokens * rows);
            for (int f = 0; f < Fusions.Length; f++)
            {
                foreach (bool withBias in new[] { false, true })
                {
                    var template = Fusions[f];
                    var (cpu, gpu) = WeightFormatChecks.Both(backends, be =>
                    {
                        var fusion = f < 2 || f == 4 ? template with { Norm = be.UploadVector(norm) } : template;
                        var y = be.UploadVector(residual);
                        be.Linear(be.UploadMatrix(encoded.Info, encoded.Data, shared), withBias ? be.UploadVector(bias) : null, be.UploadVector(x), y, tokens, fusion);
                        return y;
                    }, tokens * rows);
                    WeightFormatChecks.AssertClose(cpu, gpu, 2e-4, $"{formatName} {tokens} tokens, fusion {f}, bias={withBias}");
                }
            }
        }
    }

    [Fact]
    public void The_cpu_reference_equals_the_ops_run_one_by_one()
    {
        const int hidden = 24, columns = 40, tokens = 5;
        IBackend be = backends.Cpu;
        float[] gate = WeightFormatChecks.RandomValues(hidden * columns), up = WeightFormatChecks.RandomValues(hidden * columns);
        float[] norm = WeightFormatChecks.RandomValues(columns), x = WeightFormatChecks.RandomValues(tokens * columns, 3);
        float[] residual = WeightFormatChecks.RandomValues(tokens * hidden);
        var gateInfo = new TensorInfo("gate", [hidden, columns], WeightType.F32);
        var upInfo = new TensorInfo("up", [hidden, columns], WeightType.F32);
        byte[] Bytes(float[] v) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
        var (joinedInfo, joined) = MatrixRows.Interleave(gateInfo, Bytes(gate), upInfo, Bytes(up), "gate_up");

        var fused = be.UploadVector(residual);
        be.Linear(be.UploadMatrix(joinedInfo, joined), null, be.UploadVector(x), fused, tokens,
            ProductFusion.RmsNormed(be.UploadVector(norm), 1e-5f) with { SwiGlu = true, Accumulate = true });

        var input = be.UploadVector(x);
        var normed = be.Allocate(tokens * columns);
        var g = be.Allocate(tokens * hidden);
        var u = be.Allocate(tokens * hidden);
        var separate = be.UploadVector(residual);
        be.RmsNorm(input, be.UploadVector(norm), normed, tokens, columns, 1e-5f);
        be.Linear(be.UploadMatrix(gateInfo, Bytes(gate)), null, normed, g, tokens);
        be.Linear(be.UploadMatrix(upInfo, Bytes(up)), null, normed, u, tokens);
        be.SwiGlu(g, u, g, tokens * hidden);
        be.Add(separate, g, separate, tokens * hidden);

        var expected = new float[tokens * hidden];
        var actual = new float[tokens * hidden];
        be.Read(separate, expected);
        be.Read(fused, actual);
        Assert.Equal(expected, actual);
    }
}
