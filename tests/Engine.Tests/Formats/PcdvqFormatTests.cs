using System.Diagnostics;
using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers;
using Engine.Quantizers.Pcdvq;
using Engine.Tests.Runtime;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class PcdvqFormatTests(BackendPair backends) : IClassFixture<BackendPair>
{
    private static readonly FormatParameters Bits14 = PcdvqFormat.Instance.DefaultParameters;
    private static readonly FormatParameters Bits16 = new(Bits: 16, Reference: PcdvqFormat.CodebookName(16));

    [Fact]
    public void Cpu_linear_is_decode_then_multiply() =>
        WeightFormatChecks.CpuLinearIsDecodeThenMultiply(backends, WeightType.Pcdvq, Bits14, 48, 120);

    [Theory]
    [InlineData(384)]
    [InlineData(4096)]
    [InlineData(11008)]
    [InlineData(67)]
    public void Hadamard_blocks_are_the_largest_power_of_two_dividing_the_length_up_to_1024(int length)
    {
        int block = Hadamard.BlockSize(length);
        Assert.Equal(length switch { 384 => 128, 4096 => 1024, 11008 => 256, _ => 1 }, block);
        // Orthonormal and its own inverse.
        var values = WeightFormatChecks.RandomValues(length).Select(v => (double)v).ToArray();
        var twice = values.ToArray();
        Hadamard.Transform(twice, block);
        Assert.Equal(values.Sum(v => v * v), twice.Sum(v => v * v), 1e-9);
        Hadamard.Transform(twice, block);
        for (int i = 0; i < length; i++) Assert.Equal(values[i], twice[i], 1e-12);
    }

    [Fact]
    public void Direction_codebook_is_unit_distinct_spread_and_deterministic()
    {
        var clock = Stopwatch.StartNew();
        float[] directions = PcdvqCodebook.Directions(14);
        var elapsed = clock.Elapsed;
        Assert.Equal(16384 * 8, directions.Length);
        for (int d = 0; d < 16384; d++)
        {
            double norm = 0;
            for (int i = 0; i < 8; i++) norm += directions[d * 8 + i] * directions[d * 8 + i];
            Assert.Equal(1.0, norm, 1e-5);
        }
        // Farthest-point selection keeps every pair apart: the largest cosine between distinct codewords, over a sample.
        double worst = 0;
        for (int a = 0; a < 16384; a += 97)
            for (int b = 0; b < 16384; b++)
            {
                if (a == b) continue;
                double cosine = 0;
                for (int i = 0; i < 8; i++) cosine += directions[a * 8 + i] * directions[b * 8 + i];
                worst = Math.Max(worst, cosine);
            }
        Assert.InRange(worst, 0.5, 0.95);
        Assert.Equal(directions, PcdvqCodebook.Directions(14));
        Assert.True(elapsed < TimeSpan.FromSeconds(60), $"codebook took {elapsed}");
    }

    [Fact]
    public void Magnitudes_are_the_lloyd_max_levels_of_chi_8()
    {
        float[] levels = PcdvqCodebook.Magnitudes();
        Assert.Equal(4, levels.Length);
        Assert.True(levels.Zip(levels.Skip(1)).All(p => p.First < p.Second));
        // The mean of chi_8 is about 2.74; the levels straddle it.
        Assert.InRange(levels[0], 1.5, 2.3);
        Assert.InRange(levels[3], 3.2, 4.2);
    }

    [Fact]
    public void Codes_round_trip_and_the_error_on_gaussian_weights_is_that_of_2_bits()
    {
        var random = new Random(3);
        const int rows = 64, columns = 512;
        var values = new float[rows * columns];
        for (int i = 0; i < values.Length; i++)
            values[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        var encoded = WeightEncoders.Encode(WeightType.Pcdvq, "layer.weight", values, rows, columns, Bits14);
        float[] decoded = WeightFormatChecks.Decode(encoded);
        double error = Math.Sqrt(values.Zip(decoded, (a, b) => (double)(a - b) * (a - b)).Sum() / values.Sum(v => (double)v * v));
        Assert.InRange(error, 0.1, 0.5);
        // Encoding the decoded matrix again changes nothing: every vector is already a codeword.
        var again = WeightEncoders.Encode(WeightType.Pcdvq, "layer.weight", decoded, rows, columns, Bits14);
        Assert.Equal(encoded.Data.AsSpan(0, rows * columns / 4).ToArray(), again.Data.AsSpan(0, rows * columns / 4).ToArray());
    }

    [Theory]
    [InlineData(14, 2.0)]
    [InlineData(16, 2.25)]
    public void Measured_bits_per_weight_are_the_formula_plus_row_scales_and_signs(int bits, double formula)
    {
        const int rows = 64, columns = 512;
        var encoded = WeightFormatChecks.Encode(WeightType.Pcdvq, bits == 14 ? Bits14 : Bits16, rows, columns);
        double expected = formula + (32.0 * rows + columns + rows) / (rows * columns);
        Assert.Equal(expected, WeightFormatChecks.MeasuredBitsPerWeight(encoded, countCompanions: false), 1e-12);
        Assert.Equal(formula, PcdvqFormat.Instance.BitsPerWeight(bits == 14 ? Bits14 : Bits16));
        // The codebook: 2^bits + 1 rows of 8 f16 values, stored once per model.
        Assert.Equal(((1 << bits) + 1) * 16, encoded.Companions.Single().Data.Length);
    }

    [Theory]
    [InlineData(12, "pcdvq.codebook.12")]
    [InlineData(14, null)]
    public void Validate_rejects_bad_parameters(int bits, string? reference) =>
        Assert.Throws<InvalidDataException>(() => PcdvqFormat.Instance.Validate(new FormatParameters(Bits: bits, Reference: reference)));

    [Fact]
    public void A_missing_or_misshapen_codebook_is_a_clear_error()
    {
        var encoded = WeightFormatChecks.Encode(WeightType.Pcdvq, Bits14, 16, 64);
        var values = new float[16 * 64];
        using var empty = new InMemoryTensors([]);
        Assert.Contains("not found", Assert.Throws<InvalidDataException>(() => PcdvqFormat.Instance.Decode(encoded.Info, encoded.Data, values, empty)).Message);
        var wrong = new StoredBytes(new TensorInfo(PcdvqFormat.CodebookName(14), [10, 8], WeightType.F16), new byte[160]);
        using var misshapen = new InMemoryTensors([wrong]);
        Assert.Contains("expected [16385, 8] f16", Assert.Throws<InvalidDataException>(() => PcdvqFormat.Instance.Decode(encoded.Info, encoded.Data, values, misshapen)).Message);
    }
}
