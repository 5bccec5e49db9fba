using Engine.Formats;
using Engine.Tests.Runtime;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class FloatFormatTests(BackendPair backends) : IClassFixture<BackendPair>
{
    [Theory]
    [InlineData(WeightType.F32, 4.0)]
    [InlineData(WeightType.F16, 2.0)]
    [InlineData(WeightType.BF16, 2.0)]
    public void Bits_per_weight_are_measured_from_the_bytes(WeightType type, double bytesPerWeight)
    {
        var encoded = WeightFormatChecks.Encode(type, default, 13, 37);
        Assert.Equal(bytesPerWeight * 8, WeightFormatChecks.MeasuredBitsPerWeight(encoded));
        Assert.Equal(bytesPerWeight * 8, WeightTypes.Get(type).BitsPerWeight(default));
    }

    [Theory]
    [InlineData(WeightType.F16)]
    [InlineData(WeightType.BF16)]
    public void Encode_then_decode_rounds_to_the_nearest_representable(WeightType type)
    {
        float[] values = WeightFormatChecks.RandomValues(101, 100);
        var encoded = Quantizers.WeightEncoders.Encode(type, "w", values, 1, values.Length);
        float[] decoded = WeightFormatChecks.Decode(encoded);
        double relative = type == WeightType.F16 ? 1.0 / 2048 : 1.0 / 256;
        for (int i = 0; i < values.Length; i++)
            Assert.True(Math.Abs(decoded[i] - values[i]) <= relative * Math.Abs(values[i]) + 1e-7, $"{values[i]} -> {decoded[i]}");
    }

    [Fact]
    public void Cpu_linear_is_decode_then_multiply() =>
        WeightFormatChecks.CpuLinearIsDecodeThenMultiply(backends, WeightType.BF16, default, 9, 77);
}
