using System.Numerics.Tensors;
using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers.Calibration;
using Engine.Quantizers.Pcdvq;

namespace Engine.Quantizers.Methods;

/// <summary>
/// GPTQ into <see cref="PcdvqFormat"/>: the same rotation, row scales, codebook and stored layout as the
/// nearest-codeword encoder (<see cref="PcdvqEncoder"/>), but GPTQ runs on the rotated matrix W' with the input
/// second moment rotated to match (H' = BᵀHB, see <see cref="PcdvqTensor.RotateInputMoment"/>), one 8-vector of
/// every row at a time: each vector takes its nearest codeword after the error of the vectors before it was fed back;
/// then each row's scale is refitted to its codes under H'.
/// </summary>
public sealed class PcdvqGptq(GptqOptions options) : ICalibratedEncoder
{
    public WeightType Type => WeightType.Pcdvq;

    public string Method => "pcdvq";

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters, InputStatistics statistics) =>
        EncodeAndDecode(name, values, rows, columns, parameters, statistics).Encoded;

    /// <summary><see cref="Encode"/>, with the rotated matrix W' the stored codes and scales decode to.</summary>
    internal (EncodedTensor Encoded, float[] DecodedRotated) EncodeAndDecode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters, InputStatistics statistics)
    {
        var tensor = new PcdvqTensor(name, rows, columns, parameters);
        int padded = tensor.PaddedColumns;
        float[] rotated = tensor.Rotate(values);
        // Scales before GPTQ, from the rows as they are: the codebook's magnitudes are fitted to RMS-normalized rows.
        for (int r = 0; r < rows; r++) tensor.SetScale(r, PcdvqTensor.RmsScale(rotated.AsSpan(r * padded, padded)));
        var h = tensor.RotateInputMoment(statistics.Mean());
        var decoded = Gptq.Quantize(rotated, rows, padded, h, new VectorQuantizer(tensor), options);
        Parallel.For(0, rows, r => tensor.SetScale(r, BestScale(rotated.AsSpan(r * padded, padded), decoded.AsSpan(r * padded, padded), h, tensor.Scale(r))));
        return (tensor.Encoded, tensor.DecodeRotated());
    }

    /// <summary>
    /// With a row's codes fixed, its layer error (w − ŵ·t) H' (w − ŵ·t)ᵀ is a parabola in the factor t on its
    /// decoded row ŵ: its minimum t = wH'ŵᵀ / ŵH'ŵᵀ, applied to the stored scale (t = 1 is GPTQ's own result, so this
    /// never does worse). Without calibration input (H' = 0) the scale stays.
    /// </summary>
    private static float BestScale(ReadOnlySpan<float> weights, ReadOnlySpan<float> decoded, double[] h, float scale)
    {
        int n = weights.Length;
        var q = new double[n];
        for (int i = 0; i < n; i++) q[i] = decoded[i];
        double cross = 0, energy = 0;
        for (int i = 0; i < n; i++)
        {
            double hq = TensorPrimitives.Dot<double>(h.AsSpan(i * n, n), q);
            cross += weights[i] * hq;
            energy += q[i] * hq;
        }
        return energy > 0 && cross > 0 ? (float)(scale * cross / energy) : scale;
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
