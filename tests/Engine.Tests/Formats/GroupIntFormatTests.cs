using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers;
using Engine.Tests.Runtime;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class GroupIntFormatTests(BackendPair backends) : IClassFixture<BackendPair>
{
    private static readonly WeightType[] Types = [WeightType.Q8, WeightType.Q4, WeightType.Q3, WeightType.Q2];
    private static readonly int[] GroupSizes = [32, 64, 128];

    /// <summary>Every width at every group size.</summary>
    public static TheoryData<WeightType, int> Formats()
    {
        var data = new TheoryData<WeightType, int>();
        foreach (var type in Types)
            foreach (int groupSize in GroupSizes)
                data.Add(type, groupSize);
        return data;
    }

    private static GroupIntFormat Format(WeightType type) => (GroupIntFormat)WeightTypes.Get(type);

    [Theory]
    [MemberData(nameof(Formats))]
    public void Cpu_linear_is_decode_then_multiply(WeightType type, int groupSize) =>
        WeightFormatChecks.CpuLinearIsDecodeThenMultiply(backends, type, new(GroupSize: groupSize), 9, 77);

    [Theory]
    [MemberData(nameof(Formats))]
    public void Chosen_codes_decode_to_their_grid_points(WeightType type, int groupSize)
    {
        var format = Format(type);
        const int rows = 3, columns = 200;
        var info = new TensorInfo("w", [rows, columns], type, new(GroupSize: groupSize));
        var layout = info.Layout;
        var data = new byte[layout.TotalBytes];
        var random = new Random(7);
        var codes = new int[rows, (int)layout.PaddedColumns];
        int groups = (int)(layout.PaddedColumns / groupSize);
        var scales = new Half[rows, groups];
        var mins = new Half[rows, groups];
        for (int r = 0; r < rows; r++)
        {
            var headerRow = data.AsSpan((int)(layout.StreamOffset(0) + r * layout.RowBytes[0]), (int)layout.RowBytes[0]);
            var codeRow = data.AsSpan((int)(layout.StreamOffset(1) + r * layout.RowBytes[1]), (int)layout.RowBytes[1]);
            for (int g = 0; g < groups; g++)
            {
                scales[r, g] = (Half)(random.NextDouble() * 0.1);
                mins[r, g] = (Half)(random.NextDouble() * 2 - 1);
                GroupIntFormat.WriteHeader(headerRow, g, scales[r, g], mins[r, g]);
            }
            for (int c = 0; c < layout.PaddedColumns; c++)
            {
                codes[r, c] = random.Next(format.MaxCode + 1);
                format.WriteCode(codeRow, c, codes[r, c]);
            }
            for (int c = 0; c < layout.PaddedColumns; c++)
                Assert.Equal(codes[r, c], format.ReadCode(codeRow, c));
        }

        var decoded = new float[rows * columns];
        format.Decode(info, data, decoded, null);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
            {
                float scale = (float)scales[r, c / groupSize], min = (float)mins[r, c / groupSize];
                Assert.Equal(MathF.FusedMultiplyAdd(codes[r, c], scale, min), decoded[r * columns + c]);
            }
    }

    [Fact]
    public void Q3_and_q4_codes_are_packed_as_documented()
    {
        var codes = Enumerable.Range(0, 32).Select(i => (i * 5 + 3) % 8).ToArray();
        uint low0 = 0, low1 = 0, third = 0;
        for (int i = 0; i < 32; i++)
        {
            if (i < 16) low0 |= (uint)(codes[i] & 3) << (2 * i);
            else low1 |= (uint)(codes[i] & 3) << (2 * (i - 16));
            third |= (uint)(codes[i] >> 2) << i;
        }
        Assert.Equal(Words(low0, low1, third), Packed(GroupIntFormat.Q3, codes));

        uint q4Word0 = 0, q4Word1 = 0;
        for (int i = 0; i < 8; i++) q4Word0 |= (uint)codes[i] << (4 * i);
        for (int i = 8; i < 16; i++) q4Word1 |= (uint)codes[i] << (4 * (i - 8));
        Assert.Equal(Words(q4Word0, q4Word1), Packed(GroupIntFormat.Q4, codes[..16]).AsSpan(0, 8).ToArray());

        static byte[] Packed(GroupIntFormat format, int[] codes)
        {
            var bytes = new byte[32 * format.Bits / 8];
            for (int i = 0; i < codes.Length; i++) format.WriteCode(bytes, i, codes[i]);
            return bytes;
        }

        static byte[] Words(params uint[] words) => words.SelectMany(BitConverter.GetBytes).ToArray();
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Round_to_nearest_is_within_half_a_step(WeightType type, int groupSize)
    {
        const int rows = 7, columns = 300;
        float[] values = WeightFormatChecks.RandomValues(rows * columns, 3);
        // A constant group, a narrow group far from zero and an all-zero row: scale 0 or tiny, never NaN.
        values.AsSpan(0, groupSize).Fill(0.1f);
        for (int c = 0; c < groupSize; c++) values[columns + c] = 1000 + c * 1e-3f;
        values.AsSpan(2 * columns, columns).Clear();
        var encoded = WeightEncoders.Encode(type, "w", values, rows, columns, new(GroupSize: groupSize));
        float[] decoded = WeightFormatChecks.Decode(encoded);
        var layout = encoded.Info.Layout;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
            {
                var (scale, min) = GroupIntFormat.ReadHeader(layout.Row(encoded.Data, 0, r), c / groupSize);
                float w = values[r * columns + c], d = decoded[r * columns + c];
                // Half a step, plus the float32 rounding of the decode.
                double allowed = scale / 2 + (Math.Abs(w) + Math.Abs(min)) * 1e-7;
                Assert.True(Math.Abs(w - d) <= allowed, $"row {r} column {c}: {w} decoded as {d} (scale {scale}, min {min})");
            }
        Assert.All(decoded.AsSpan(0, groupSize).ToArray(), d => Assert.Equal(0.1f, d, 1e-4f));
        Assert.All(decoded.AsSpan(2 * columns, columns).ToArray(), d => Assert.Equal(0f, d));
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(1e6f)]
    [InlineData(float.NegativeInfinity)]
    public void Values_outside_the_f16_range_are_rejected(float bad)
    {
        float[] values = WeightFormatChecks.RandomValues(64);
        values[40] = bad;
        var error = Assert.Throws<InvalidDataException>(() => WeightEncoders.Encode(WeightType.Q4, "w", values, 1, 64));
        Assert.Contains("f16 range", error.Message);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Measured_bits_per_weight_match_the_formula(WeightType type, int groupSize)
    {
        var format = Format(type);
        var parameters = new FormatParameters(GroupSize: groupSize);
        double formula = format.Bits + 32.0 / groupSize;
        Assert.Equal(formula, format.BitsPerWeight(parameters));
        var encoded = WeightFormatChecks.Encode(type, parameters, 5, 4 * 128);
        Assert.Equal(formula, WeightFormatChecks.MeasuredBitsPerWeight(encoded));
    }

    [Fact]
    public void Q4_at_group_32_costs_five_bits() =>
        Assert.Equal(5.0, GroupIntFormat.Q4.BitsPerWeight(GroupIntFormat.Q4.DefaultParameters));

    public static TheoryData<WeightType, FormatParameters> BadParameters() => new()
    {
        { WeightType.Q4, new(GroupSize: 0) },
        { WeightType.Q4, new(GroupSize: 16) },
        { WeightType.Q8, new(GroupSize: 48) },
        { WeightType.Q2, new(GroupSize: 256) },
        { WeightType.Q3, new(GroupSize: 32, Bits: 4) },
        { WeightType.Q4, new(GroupSize: 32, Planes: 2) },
        { WeightType.Q8, new(GroupSize: 32, Reference: "codebook") },
    };

    [Theory]
    [MemberData(nameof(BadParameters))]
    public void Validate_rejects_bad_parameters(WeightType type, FormatParameters parameters)
    {
        Assert.Throws<InvalidDataException>(() => WeightTypes.Get(type).Validate(parameters));
        Assert.Throws<InvalidDataException>(() => WeightTypes.Get(type).Layout(4, 64, parameters));
    }

    [Theory]
    [InlineData(WeightType.Q8)]
    [InlineData(WeightType.Q4)]
    [InlineData(WeightType.Q3)]
    [InlineData(WeightType.Q2)]
    public void Table_finds_the_format_by_id_and_name(WeightType type)
    {
        var format = WeightTypes.Get(type);
        Assert.Equal(type, format.Type);
        Assert.True(WeightTypes.TryGet(format.Name, out var byName));
        Assert.Same(format, byName);
        Assert.Equal(type, WeightEncoders.Get(type).Type);
    }
}
