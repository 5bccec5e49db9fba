using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers;
using Engine.Tests.Runtime;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class BinaryFormatTests(BackendPair backends) : IClassFixture<BackendPair>
{
    private static readonly int[] GroupSizes = [32, 128, 256];

    /// <summary>Both plane counts at several group sizes.</summary>
    public static TheoryData<int, int> Formats()
    {
        var data = new TheoryData<int, int>();
        foreach (int planes in new[] { 1, 2 })
            foreach (int groupSize in GroupSizes)
                data.Add(planes, groupSize);
        return data;
    }

    private static FormatParameters Parameters(int planes, int groupSize) => new(GroupSize: groupSize, Planes: planes);

    [Theory]
    [MemberData(nameof(Formats))]
    public void Cpu_linear_is_decode_then_multiply(int planes, int groupSize) =>
        WeightFormatChecks.CpuLinearIsDecodeThenMultiply(backends, WeightType.Binary, Parameters(planes, groupSize), 9, 77);

    [Theory]
    [MemberData(nameof(Formats))]
    public void Chosen_signs_decode_to_their_scaled_sums(int planes, int groupSize)
    {
        const int rows = 3, columns = 300;
        var info = new TensorInfo("w", [rows, columns], WeightType.Binary, Parameters(planes, groupSize));
        var layout = info.Layout;
        var data = new byte[layout.TotalBytes];
        var random = new Random(11);
        int groups = (int)(layout.PaddedColumns / groupSize);
        var scales = new Half[rows, groups, planes];
        var signs = new bool[rows, (int)layout.PaddedColumns, planes];
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < planes; k++)
            {
                var scaleRow = data.AsSpan((int)(r * layout.RowBytes[0]), (int)layout.RowBytes[0]);
                var signRow = data.AsSpan((int)(layout.StreamOffset(1 + k) + r * layout.RowBytes[1 + k]), (int)layout.RowBytes[1 + k]);
                for (int g = 0; g < groups; g++)
                {
                    scales[r, g, k] = (Half)random.NextDouble();
                    BinaryFormat.WriteScale(scaleRow, g, k, planes, scales[r, g, k]);
                }
                for (int c = 0; c < layout.PaddedColumns; c++)
                {
                    signs[r, c, k] = random.Next(2) == 1;
                    BinaryFormat.WriteSign(signRow, c, signs[r, c, k]);
                }
                for (int c = 0; c < layout.PaddedColumns; c++)
                    Assert.Equal(signs[r, c, k], BinaryFormat.ReadSign(signRow, c));
            }

        var decoded = new float[rows * columns];
        info.Format.Decode(info, data, decoded, null);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
            {
                float expected = 0;
                for (int k = 0; k < planes; k++)
                    expected += signs[r, c, k] ? (float)scales[r, c / groupSize, k] : -(float)scales[r, c / groupSize, k];
                Assert.Equal(expected, decoded[r * columns + c]);
            }
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Planes_take_the_mean_magnitude_and_the_sign(int planes, int groupSize)
    {
        const int rows = 4, columns = 333;
        float[] values = WeightFormatChecks.RandomValues(rows * columns);
        values[5] = 0;  // zero counts positive
        values.AsSpan(2 * columns, columns).Clear();
        var encoded = WeightEncoders.Encode(WeightType.Binary, "w", values, rows, columns, Parameters(planes, groupSize));
        var layout = encoded.Info.Layout;
        float[] decoded = WeightFormatChecks.Decode(encoded);
        for (int r = 0; r < rows; r++)
        {
            var residual = values.AsSpan(r * columns, columns).ToArray();
            for (int k = 0; k < planes; k++)
            {
                var signRow = layout.Row(encoded.Data, 1 + k, r);
                for (int start = 0; start < columns; start += groupSize)
                {
                    var part = residual.AsSpan(start, Math.Min(groupSize, columns - start));
                    float scale = BinaryFormat.ReadScale(layout.Row(encoded.Data, 0, r), start / groupSize, k, planes);
                    double mean = 0;
                    foreach (float w in part) mean += Math.Abs(w) / part.Length;
                    Assert.Equal((float)(Half)mean, scale);
                    for (int i = 0; i < part.Length; i++)
                    {
                        Assert.Equal(part[i] >= 0, BinaryFormat.ReadSign(signRow, start + i));
                        part[i] -= part[i] >= 0 ? scale : -scale;
                    }
                }
            }
            // What is left after the last plane is exactly what the decode misses.
            for (int c = 0; c < columns; c++)
                Assert.Equal(values[r * columns + c] - decoded[r * columns + c], residual[c], 1e-6f);
        }
        Assert.True(BinaryFormat.ReadSign(layout.Row(encoded.Data, 1, 0), 5));
        Assert.All(decoded.AsSpan(2 * columns, columns).ToArray(), d => Assert.Equal(0f, d));
    }

    [Fact]
    public void A_second_plane_cuts_the_error()
    {
        const int rows = 16, columns = 512;
        float[] values = WeightFormatChecks.RandomValues(rows * columns);
        double MeanSquaredError(int planes)
        {
            float[] decoded = WeightFormatChecks.Decode(WeightEncoders.Encode(WeightType.Binary, "w", values, rows, columns, Parameters(planes, 128)));
            return values.Zip(decoded, (w, d) => (double)(w - d) * (w - d)).Average();
        }
        double one = MeanSquaredError(1), two = MeanSquaredError(2);
        // Uniform weights in [-1, 1]: 1/12 with one plane, 1/48 with two.
        Assert.InRange(one, 0.075, 0.092);
        Assert.InRange(two, 0.018, 0.023);
    }

    [Fact]
    public void Non_finite_values_are_rejected()
    {
        float[] values = WeightFormatChecks.RandomValues(256);
        values[3] = float.NaN;
        Assert.Throws<InvalidDataException>(() => WeightEncoders.Encode(WeightType.Binary, "w", values, 1, 256));
    }

    [Theory]
    [InlineData(1, 128, 1.125)]
    [InlineData(2, 128, 2.25)]
    [InlineData(1, 32, 1.5)]
    [InlineData(2, 64, 2.5)]
    [InlineData(1, 256, 1.0625)]
    public void Measured_bits_per_weight_match_the_formula(int planes, int groupSize, double expected)
    {
        var parameters = Parameters(planes, groupSize);
        Assert.Equal(expected, planes * (1 + 16.0 / groupSize));
        Assert.Equal(expected, BinaryFormat.Instance.BitsPerWeight(parameters));
        var encoded = WeightFormatChecks.Encode(WeightType.Binary, parameters, 5, 3 * 256);
        Assert.Equal(expected, WeightFormatChecks.MeasuredBitsPerWeight(encoded));
    }

    [Fact]
    public void Default_is_one_plane_of_group_128() =>
        Assert.Equal(1.125, BinaryFormat.Instance.BitsPerWeight(BinaryFormat.Instance.DefaultParameters));

    public static TheoryData<FormatParameters> BadParameters() => new()
    {
        new(GroupSize: 0, Planes: 1),
        new(GroupSize: 16, Planes: 1),
        new(GroupSize: 48, Planes: 1),
        new(GroupSize: 512, Planes: 1),
        new(GroupSize: 128, Planes: 0),
        new(GroupSize: 128, Planes: 3),
        new(GroupSize: 128, Planes: 1, Bits: 1),
        new(GroupSize: 128, Planes: 1, Rank: 4),
    };

    [Theory]
    [MemberData(nameof(BadParameters))]
    public void Validate_rejects_bad_parameters(FormatParameters parameters)
    {
        Assert.Throws<InvalidDataException>(() => BinaryFormat.Instance.Validate(parameters));
        Assert.Throws<InvalidDataException>(() => BinaryFormat.Instance.Layout(4, 256, parameters));
    }

    [Fact]
    public void Table_finds_the_format_by_id_and_name()
    {
        Assert.Same(BinaryFormat.Instance, WeightTypes.Get(WeightType.Binary));
        Assert.True(WeightTypes.TryGet("binary", out var byName));
        Assert.Same(BinaryFormat.Instance, byName);
        Assert.Equal(WeightType.Binary, WeightEncoders.Get(WeightType.Binary).Type);
        // Ids past the table, or between formats not built, are unknown rather than a neighbour's format.
        Assert.False(WeightTypes.TryGet((WeightType)200, out _));
        Assert.Throws<InvalidDataException>(() => WeightTypes.Get((WeightType)200));
    }
}
