using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers;

/// <summary>The default encoder of every weight format, indexed like <see cref="WeightTypes"/>.</summary>
public static class WeightEncoders
{
    private static readonly IWeightEncoder[] Table =
    [
        new FloatEncoder(FloatFormat.F32),
        new FloatEncoder(FloatFormat.F16),
        new FloatEncoder(FloatFormat.BF16),
        new GroupIntEncoder(GroupIntFormat.Q8),
        new GroupIntEncoder(GroupIntFormat.Q4),
        new GroupIntEncoder(GroupIntFormat.Q3),
        new GroupIntEncoder(GroupIntFormat.Q2),
        new SefpEncoder(),
        new BinaryEncoder(),
        new PcdvqEncoder(),
        new LowRankEncoder(),
    ];

    public static IWeightEncoder Get(WeightType type) =>
        Table.FirstOrDefault(e => e.Type == type) ?? throw new NotSupportedException($"no encoder for weight format {WeightTypes.Get(type).Name}");

    /// <summary>Encodes a matrix in <paramref name="type"/> with <paramref name="parameters"/> (the format's defaults when omitted).</summary>
    public static EncodedTensor Encode(WeightType type, string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters? parameters = null) =>
        Get(type).Encode(name, values, rows, columns, parameters ?? WeightTypes.Get(type).DefaultParameters);
}
