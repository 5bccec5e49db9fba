using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers;

/// <summary>f32, f16 and bf16: a conversion (round to nearest even).</summary>
public sealed class FloatEncoder(FloatFormat format) : IWeightEncoder
{
    public WeightType Type => format.Type;

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters)
    {
        var info = new TensorInfo(name, [rows, columns], format.Type, parameters);
        var data = new byte[info.Layout.TotalBytes];
        format.EncodeValues(values[..(rows * columns)], data);
        return new EncodedTensor(info, data);
    }
}
