using Engine.Formats;
using Engine.Quantizers.Calibration;

namespace Engine.Quantizers.Methods;

/// <summary>
/// A quantization method that needs calibration (GPTQ, ...): like <see cref="IWeightEncoder"/>, with the statistics of
/// the matrix's input measured on calibration text in the partly quantized model.
/// </summary>
public interface ICalibratedEncoder
{
    WeightType Type { get; }

    /// <summary>The method's name on the command line (<c>engine quantize --method</c>).</summary>
    string Method { get; }

    /// <summary>
    /// Whether the statistics must also hold the cross moment with the full-precision model's input
    /// (<see cref="InputStatistics.CrossMean"/>), which costs calibration a full-precision pass beside each pass.
    /// </summary>
    bool NeedsCrossStatistics => false;

    /// <summary>Encodes the row-major [rows, columns] matrix <paramref name="values"/>, whose input had <paramref name="statistics"/>.</summary>
    EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters, InputStatistics statistics);
}
