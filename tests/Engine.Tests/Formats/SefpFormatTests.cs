using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Tests.Runtime;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class SefpFormatTests(BackendPair backends) : IClassFixture<BackendPair>, IDisposable
{
    public void Dispose()
    {
        backends.Cpu.RuntimePrecision = 0;
        backends.Vulkan.RuntimePrecision = 0;
    }

    private void UsePrecision(int bits)
    {
        backends.Cpu.RuntimePrecision = bits;
        backends.Vulkan.RuntimePrecision = bits;
    }

    [Fact]
    public void Cpu_linear_is_decode_then_multiply() =>
        WeightFormatChecks.CpuLinearIsDecodeThenMultiply(backends, WeightType.Sefp, new(GroupSize: 32, Bits: 7), 9, 77);

    [Theory]
    [InlineData(32, 7, 8.25)]
    [InlineData(32, 2, 3.25)]
    [InlineData(16, 4, 5.5)]
    public void Measured_bits_per_weight_match_the_formula(int group, int bits, double expected)
    {
        // 128 columns: whole 32-weight plane words and whole 4-byte exponent rows, so no padding.
        var encoded = WeightFormatChecks.Encode(WeightType.Sefp, new(GroupSize: group, Bits: bits), 9, 128);
        Assert.Equal(expected, WeightFormatChecks.MeasuredBitsPerWeight(encoded));
        Assert.Equal(expected, SefpFormat.Instance.BitsPerWeight(new(GroupSize: group, Bits: bits)));
    }

    [Fact]
    public void Bytes_read_per_pass_drop_with_precision_without_a_reload()
    {
        var parameters = new FormatParameters(GroupSize: 32, Bits: 7);
        var encoded = WeightFormatChecks.Encode(WeightType.Sefp, parameters, 64, 256);
        foreach (var backend in new Engine.Runtime.IBackend[] { backends.Cpu, backends.Vulkan })
        {
            var matrix = backend.UploadMatrix(encoded.Info, encoded.Data);
            foreach (int m in new[] { 7, 6, 5, 4, 3, 2 })
            {
                backend.RuntimePrecision = m;
                // Per weight: one exponent byte per 32 weights, a sign bit and m magnitude bits.
                Assert.Equal(64L * 256 * (1 + m + 8.0 / 32) / 8, matrix.ByteSize);
            }
            backend.RuntimePrecision = 0;
            Assert.Equal(encoded.Data.Length, matrix.ByteSize);
        }
    }

    [Fact]
    public void Switching_precision_changes_the_vulkan_result_to_the_cpu_one_at_the_new_precision()
    {
        const int rows = 40, columns = 200;
        var encoded = WeightFormatChecks.Encode(WeightType.Sefp, new(GroupSize: 32, Bits: 7), rows, columns);
        float[] x = WeightFormatChecks.RandomValues(columns);
        var cpuMatrix = backends.Cpu.UploadMatrix(encoded.Info, encoded.Data);
        var gpuMatrix = backends.Vulkan.UploadMatrix(encoded.Info, encoded.Data);
        var cpuX = backends.Cpu.UploadVector(x);
        var gpuX = backends.Vulkan.UploadVector(x);
        float[]? previous = null;
        foreach (int m in new[] { 7, 3, 5, 2 })
        {
            UsePrecision(m);
            var cpu = new float[rows];
            var gpu = new float[rows];
            var cpuY = backends.Cpu.Allocate(rows);
            var gpuY = backends.Vulkan.Allocate(rows);
            backends.Cpu.Linear(cpuMatrix, null, cpuX, cpuY, 1);
            backends.Vulkan.Linear(gpuMatrix, null, gpuX, gpuY, 1);
            backends.Cpu.Read(cpuY, cpu);
            backends.Vulkan.Read(gpuY, gpu);
            WeightFormatChecks.AssertClose(cpu, gpu, 1e-4, $"precision {m}");
            if (previous is not null) Assert.NotEqual(previous, gpu);
            previous = gpu;
        }
    }

    [Fact]
    public void Error_shrinks_as_precision_rises()
    {
        var random = new Random(5);
        const int rows = 64, columns = 256;
        var values = new float[rows * columns];
        for (int i = 0; i < values.Length; i++)
            values[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        var encoded = Quantizers.WeightEncoders.Encode(WeightType.Sefp, "w", values, rows, columns, new FormatParameters(GroupSize: 32, Bits: 7));
        double previous = double.MaxValue;
        for (int m = 2; m <= 7; m++)
        {
            var decoded = new float[values.Length];
            SefpFormat.Instance.Decode(encoded.Info, encoded.Data, decoded, null, m);
            double error = values.Zip(decoded, (a, b) => (double)(a - b) * (a - b)).Average();
            Assert.True(error < previous / 2.5, $"precision {m}: mean squared error {error}, at {m - 1} bits {previous}");
            previous = error;
        }
    }

    [Fact]
    public void Round_trip_is_exact_for_values_on_the_grid_and_zero_groups_decode_to_zero()
    {
        // Group 0 has largest exponent 0 (|w| < 2): at 4 bits the grid step is 2^(0 + 1 - 4) = 1/8.
        var values = new float[64];
        values[0] = 1.875f;
        values[1] = -0.125f;
        values[2] = 0.5f;
        values[31] = -1.0f;
        var encoded = Quantizers.WeightEncoders.Encode(WeightType.Sefp, "w", values, 1, 64, new FormatParameters(GroupSize: 32, Bits: 4));
        var decoded = WeightFormatChecks.Decode(encoded);
        Assert.Equal(values, decoded);
        Assert.Equal(0, encoded.Data[1]);  // the second group's exponent byte: an all-zero group
    }

    [Theory]
    [InlineData(8, 7)]
    [InlineData(32, 1)]
    [InlineData(32, 8)]
    [InlineData(64, 4)]
    public void Validate_rejects_bad_parameters(int group, int bits) =>
        Assert.Throws<InvalidDataException>(() => SefpFormat.Instance.Validate(new FormatParameters(GroupSize: group, Bits: bits)));

    [Fact]
    public void Run_time_precision_outside_2_to_7_is_refused()
    {
        Assert.Throws<ArgumentException>(() => backends.Cpu.RuntimePrecision = 1);
        Assert.Throws<ArgumentException>(() => backends.Vulkan.RuntimePrecision = 8);
    }
}
