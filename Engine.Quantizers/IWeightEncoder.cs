using Engine.Formats;

namespace Engine.Quantizers;

/// <summary>
/// The default method of one weight format (round-to-nearest, or the closed form: SVD for low-rank, nearest
/// codeword for VQ): float weights in, stored bytes out. The papers' methods (GPTQ, ...) reuse the same formats.
/// </summary>
public interface IWeightEncoder
{
    WeightType Type { get; }

    /// <summary>The method's name on the command line (<c>engine quantize --method</c>): round-to-nearest unless the encoder says otherwise.</summary>
    string Method => "rtn";

    /// <summary>
    /// Encodes the row-major [rows, columns] matrix <paramref name="values"/> as tensor <paramref name="name"/>.
    /// The result's data is laid out as <see cref="TensorInfo.Layout"/> says; tensors the format references (a
    /// codebook, low-rank factors) come with it.
    /// </summary>
    EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters);
}
