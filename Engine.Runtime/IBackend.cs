using Engine.Formats;

namespace Engine.Runtime;

/// <summary>A float32 activation or parameter vector living on a backend; its length is its capacity in floats.</summary>
public interface ITensor
{
    int Length { get; }
}

/// <summary>A weight matrix [Rows, Columns] kept in its storage format on a backend.</summary>
public interface IWeightMatrix
{
    int Rows { get; }
    int Columns { get; }
    WeightType Type { get; }
    FormatParameters Parameters { get; }

    /// <summary>Bytes of weight data one full pass over the matrix reads (padding included).</summary>
    long ByteSize { get; }
}

/// <summary>
/// The operations a model graph is written in. The Vulkan backend records them into one command buffer and
/// submits when a result is read; the CPU reference backend runs them at once. Sizes are passed explicitly so a
/// tensor allocated for the largest batch serves every smaller one.
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>"vulkan" or "cpu".</summary>
    string Name { get; }

    /// <summary>The device that runs the ops, in words.</summary>
    string DeviceName { get; }

    /// <summary>
    /// Bits read from weights whose format has a run-time precision (SEFP mantissa bits, 2..7; a tensor stored with
    /// fewer reads all it has); 0 reads everything stored. Changing it takes effect at the next op, without a reload.
    /// </summary>
    int RuntimePrecision { get; set; }

    /// <summary>
    /// Uploads a matrix in its stored format (<paramref name="data"/> laid out as <see cref="TensorInfo.Layout"/> says);
    /// <paramref name="shared"/> supplies the tensors the format references (a codebook).
    /// </summary>
    IWeightMatrix UploadMatrix(TensorInfo info, ReadOnlySpan<byte> data, ITensorSource? shared = null);

    ITensor UploadVector(ReadOnlySpan<float> values);

    ITensor Allocate(int length);

    /// <summary>output[t, :] = table[tokens[t], :].</summary>
    void Embedding(IWeightMatrix table, ReadOnlySpan<int> tokens, ITensor output);

    /// <summary>y[t, r] = sum_c W[r, c] x[t, c] (+ bias[r]) for t below <paramref name="tokens"/>.</summary>
    void Linear(IWeightMatrix weight, ITensor? bias, ITensor x, ITensor y, int tokens);

    /// <summary>Each of <paramref name="rows"/> rows of width <paramref name="dim"/>: y = x / rms(x) * weight (x and y may be the same).</summary>
    void RmsNorm(ITensor x, ITensor weight, ITensor y, int rows, int dim, float eps);

    /// <summary>Rotates x[tokens][heads][headDim] in place; token t is at position pos0 + t; the table comes from <see cref="RopeTable"/>.</summary>
    void Rope(ITensor x, ITensor table, int tokens, int heads, int headDim, int pos0, RopeLayout layout);

    /// <summary>
    /// Causal attention of q[tokens][heads][headDim] at positions pos0.. against keys/values[position][kvHeads][headDim]
    /// (positions 0 .. pos0 + tokens - 1 already stored); output has q's layout.
    /// </summary>
    void Attention(ITensor q, ITensor keys, ITensor values, ITensor output, int tokens, int pos0, int heads, int kvHeads, int headDim, float scale);

    /// <summary>output[i] = silu(gate[i]) * up[i].</summary>
    void SwiGlu(ITensor gate, ITensor up, ITensor output, int count);

    /// <summary>output[i] = a[i] + b[i] (output may be a).</summary>
    void Add(ITensor a, ITensor b, ITensor output, int count);

    /// <summary>destination[destinationOffset + i] = source[sourceOffset + i].</summary>
    void Copy(ITensor source, int sourceOffset, ITensor destination, int destinationOffset, int count);

    /// <summary>Softmax of each row, in place.</summary>
    void Softmax(ITensor x, int rows, int cols);

    /// <summary>Completes every recorded op and copies the first destination.Length floats of the tensor out.</summary>
    void Read(ITensor tensor, Span<float> destination);
}
