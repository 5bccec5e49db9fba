using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers.Pcdvq;

namespace Engine.Quantizers;

/// <summary>
/// PCDVQ by nearest codeword: random signs seeded from the tensor name, the block Hadamard rotation on both sides,
/// per-row RMS scaling, then for every 8-vector the direction of largest cosine (searched over the whole codebook)
/// and the nearest magnitude (<see cref="PcdvqFormat"/>, written by <see cref="PcdvqTensor"/>).
/// </summary>
public sealed class PcdvqEncoder : IWeightEncoder
{
    private const int Dim = PcdvqFormat.VectorLength;

    public WeightType Type => WeightType.Pcdvq;

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters)
    {
        var tensor = new PcdvqTensor(name, rows, columns, parameters);
        int padded = tensor.PaddedColumns;
        float[] rotated = tensor.Rotate(values);
        Parallel.For(0, rows, r =>
        {
            var row = rotated.AsSpan(r * padded, padded);
            tensor.SetScale(r, PcdvqTensor.RmsScale(row));
            var scores = new float[tensor.Codewords.Count];
            var decoded = new float[Dim];
            for (int v = 0; v < padded / Dim; v++) tensor.Quantize(r, v, row.Slice(v * Dim, Dim), decoded, scores);
        });
        return tensor.Encoded;
    }
}
