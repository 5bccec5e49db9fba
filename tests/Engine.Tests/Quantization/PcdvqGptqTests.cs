using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers;
using Engine.Quantizers.Calibration;
using Engine.Quantizers.Methods;
using Engine.Quantizers.Pcdvq;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Quantization;

/// <summary>GPTQ into PCDVQ on small random layers with correlated inputs, against the nearest-codeword encoder.</summary>
public sealed class PcdvqGptqTests
{
    private const int Rows = 48, Columns = 152;  // 152 columns pad to 160: the padded columns have no input

    private static FormatParameters Parameters(int bits) => new(Bits: bits, Reference: PcdvqFormat.CodebookName(bits));

    [Theory]
    [InlineData(14, true)]
    [InlineData(14, false)]
    [InlineData(16, true)]
    public void Pcdvq_gptq_layer_error_is_below_the_nearest_codeword_encoders_on_the_same_H(int bits, bool actOrder)
    {
        float[] w = WeightFormatChecks.RandomValues(Rows * Columns);
        var statistics = GptqTests.CorrelatedInputs(Columns, 600, seed: Random.Shared.Next());
        var h = statistics.Mean();

        var nearest = WeightEncoders.Encode(WeightType.Pcdvq, "w", w, Rows, Columns, Parameters(bits));
        var gptq = new PcdvqGptq(new GptqOptions(ActOrder: actOrder)).Encode("w", w, Rows, Columns, Parameters(bits), statistics);

        double nearestError = Gptq.LayerError(w, WeightFormatChecks.Decode(nearest), Rows, Columns, h);
        double gptqError = Gptq.LayerError(w, WeightFormatChecks.Decode(gptq), Rows, Columns, h);
        Assert.True(gptqError < 0.5 * nearestError, $"GPTQ {gptqError:G4} vs nearest codeword {nearestError:G4}");
        Assert.Equal(nearest.Data.Length, gptq.Data.Length);
        Assert.Equal(nearest.Companions.Single().Data, gptq.Companions.Single().Data);
    }

    [Theory]
    [InlineData(14)]
    [InlineData(16)]
    public void Pcdvq_gptq_stores_what_its_feedback_was_computed_against(int bits)
    {
        float[] w = WeightFormatChecks.RandomValues(Rows * Columns);
        var statistics = GptqTests.CorrelatedInputs(Columns, 300, seed: Random.Shared.Next());
        var (encoded, fedBack) = new PcdvqGptq(new GptqOptions()).EncodeAndDecode("w", w, Rows, Columns, Parameters(bits), statistics);
        using var shared = new InMemoryTensors(encoded.Companions);
        float[] codebook = PcdvqFormat.ReadCodebook(encoded.Info.Parameters, shared);
        Assert.Equal(PcdvqFormat.DecodeRotated(encoded.Info, encoded.Data, codebook), fedBack);
    }

    [Fact]
    public void With_no_calibration_tokens_pcdvq_gptq_equals_the_nearest_codeword_encoder()
    {
        float[] w = WeightFormatChecks.RandomValues(Rows * Columns);
        var nearest = WeightEncoders.Encode(WeightType.Pcdvq, "w", w, Rows, Columns, Parameters(14));
        var gptq = new PcdvqGptq(new GptqOptions()).Encode("w", w, Rows, Columns, Parameters(14), new InputStatistics(Columns));
        Assert.Equal(nearest.Data, gptq.Data);
    }

    [Fact]
    public void The_rotated_input_moment_gives_the_layer_error_of_the_rotated_matrix()
    {
        // tr(ΔW H ΔWᵀ) = tr(ΔW' H' ΔW'ᵀ) for any ΔW, the rotation of both taken as the format stores it.
        var tensor = new PcdvqTensor("w", Rows, Columns, Parameters(14));
        float[] delta = WeightFormatChecks.RandomValues(Rows * Columns);
        var h = GptqTests.CorrelatedInputs(Columns, 300, seed: Random.Shared.Next()).Mean();
        double direct = Gptq.LayerError(delta, new float[delta.Length], Rows, Columns, h);
        double rotated = Gptq.LayerError(tensor.Rotate(delta), new float[Rows * tensor.PaddedColumns], Rows, tensor.PaddedColumns, tensor.RotateInputMoment(h));
        Assert.Equal(1, rotated / direct, 1e-5);
    }

    [Theory]
    [InlineData(14)]
    [InlineData(16)]
    public void Codebooks_have_2_to_the_bits_unit_directions_and_4_ascending_magnitudes(int bits)
    {
        var codebook = PcdvqCodebook.Build(bits);
        Assert.Equal(new long[] { (1 << bits) + 1, 8 }, codebook.Info.Shape);
        using var shared = new InMemoryTensors([codebook]);
        float[] values = PcdvqFormat.ReadCodebook(Parameters(bits), shared);
        for (int d = 0; d < 1 << bits; d++)
        {
            double norm = 0;
            for (int i = 0; i < 8; i++) norm += values[d * 8 + i] * values[d * 8 + i];
            Assert.Equal(1.0, Math.Sqrt(norm), 2e-3);  // f16 rounding of each coordinate
        }
        var magnitudes = values.AsSpan((1 << bits) * 8, 4).ToArray();
        Assert.True(magnitudes.Zip(magnitudes.Skip(1)).All(p => p.First < p.Second), string.Join(", ", magnitudes));
    }
}
