using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers;

/// <summary>
/// The encoders that need no calibration: every weight format's default (indexed like <see cref="WeightTypes"/>) and
/// the other methods of a format (multi-precision SEFP).
/// </summary>
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

    private static readonly IWeightEncoder[] Methods = [new SefpEncoder { MultiPrecision = true }];

    public static IWeightEncoder Get(WeightType type) =>
        Table.FirstOrDefault(e => e.Type == type) ?? throw new NotSupportedException($"no encoder for weight format {WeightTypes.Get(type).Name}");

    /// <summary>The encoder of <paramref name="type"/> for <c>--method</c> <paramref name="method"/>, or null when it needs calibration or does not exist.</summary>
    public static IWeightEncoder? Find(WeightType type, string method) =>
        Table.Concat(Methods).FirstOrDefault(e => e.Type == type && string.Equals(e.Method, method, StringComparison.OrdinalIgnoreCase));

    /// <summary>The methods of a format that need no calibration, the default first.</summary>
    public static IEnumerable<string> MethodsOf(WeightType type) => Table.Concat(Methods).Where(e => e.Type == type).Select(e => e.Method);

    /// <summary>Encodes a matrix in <paramref name="type"/> with <paramref name="parameters"/> (the format's defaults when omitted).</summary>
    public static EncodedTensor Encode(WeightType type, string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters? parameters = null) =>
        Get(type).Encode(name, values, rows, columns, parameters ?? WeightTypes.Get(type).DefaultParameters);
}
