using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers.Calibration;
using Engine.Quantizers.Pcdvq;

namespace Engine.Quantizers.Methods;

/// <summary>
/// GPTQ into <see cref="PcdvqFormat"/>: the same rotation, row scales, codebook and stored layout as the
/// nearest-codeword encoder (<see cref="PcdvqEncoder"/>), but GPTQ runs on the rotated matrix W' with the input
/// second moment rotated to match (H' = BᵀHB, see <see cref="PcdvqTensor.RotateInputMoment"/>), one 8-vector of
/// every row at a time: each vector takes its nearest codeword after the error of the vectors before it was fed back.
/// </summary>
public sealed class PcdvqGptq(GptqOptions options) : ICalibratedEncoder
{
    public WeightType Type => WeightType.Pcdvq;

    public string Method => "pcdvq";

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters, InputStatistics statistics) =>
        EncodeAndDecode(name, values, rows, columns, parameters, statistics).Encoded;

    /// <summary><see cref="Encode"/>, with the rotated matrix W' GPTQ's feedback was computed against (what the codes decode to).</summary>
    internal (EncodedTensor Encoded, float[] DecodedRotated) EncodeAndDecode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters, InputStatistics statistics)
    {
        var tensor = new PcdvqTensor(name, rows, columns, parameters);
        int padded = tensor.PaddedColumns;
        float[] rotated = tensor.Rotate(values);
        // Scales before GPTQ, from the rows as they are: the codebook's magnitudes are fitted to RMS-normalized rows.
        for (int r = 0; r < rows; r++) tensor.SetScale(r, PcdvqTensor.RmsScale(rotated.AsSpan(r * padded, padded)));
        var decoded = Gptq.Quantize(rotated, rows, padded, tensor.RotateInputMoment(statistics.Mean()), new VectorQuantizer(tensor), options);
        return (tensor.Encoded, decoded);
    }

    /// <summary>One 8-vector of every row at a time, each row's vector searched on its own thread.</summary>
    private sealed class VectorQuantizer(PcdvqTensor tensor) : IErrorFeedbackQuantizer
    {
        public int Span => PcdvqFormat.VectorLength;

        public void Prepare(int column, ReadOnlySpan<float> weights)
        {
        }

        public void Quantize(int column, ReadOnlySpan<float> values, Span<float> decoded)
        {
            // Spans cannot cross into the lambda: copy out, fill, copy back.
            float[] input = values.ToArray(), output = new float[decoded.Length];
            Parallel.For(0, tensor.Rows, () => new float[tensor.Codewords.Count], (r, _, scores) =>
            {
                tensor.Quantize(r, column / Span, input.AsSpan(r * Span, Span), output.AsSpan(r * Span, Span), scores);
                return scores;
            }, _ => { });
            output.CopyTo(decoded);
        }
    }
}
