using Engine.Formats;

namespace Engine.Runtime;

/// <summary>The core ops a transformer graph is written in: products with their fusions, norms, rotary embedding, attention, element-wise ops.</summary>
public interface ICoreOps
{
    /// <summary>output[t, :] = table[tokens[t], :].</summary>
    void Embedding(IWeightMatrix table, ReadOnlySpan<int> tokens, ITensor output);

    /// <summary>
    /// y[t, r] = sum_c W[r, c] x[t, c] (+ bias[r]) for t below <paramref name="tokens"/>, with the
    /// <paramref name="fusion"/>'s input norm, SwiGLU pairing and residual accumulation done inside the product.
    /// </summary>
    void Linear(IWeightMatrix weight, ITensor? bias, ITensor x, ITensor y, int tokens, ProductFusion fusion = default);

    /// <summary>
    /// Each of <paramref name="rows"/> rows of width <paramref name="dim"/>: y = x / rms(x) * weight (x and y may be the
    /// same). Element i of row r is scaled by weight[(r·dim + i) mod weight.Length], so a weight spanning several rows
    /// serves a norm over groups of a wider vector.
    /// </summary>
    void RmsNorm(ITensor x, ITensor weight, ITensor y, int rows, int dim, float eps);

    /// <summary>
    /// Each row of width <paramref name="dim"/>: y = (x - mean) / sqrt(var + eps) * weight + bias (x and y may be the
    /// same), with weight and bias indexed as in <see cref="RmsNorm"/> (a weight spanning several rows makes a group norm).
    /// </summary>
    void LayerNorm(ITensor x, ITensor weight, ITensor? bias, ITensor y, int rows, int dim, float eps);

    /// <summary>Rotates x[tokens][heads][headDim] in place; token t is at position pos0 + t; the table comes from <see cref="RopeTable"/>.</summary>
    void Rope(ITensor x, ITensor table, int tokens, int heads, int headDim, int pos0, RopeLayout layout);

    /// <summary>
    /// The attention prologue over fused projections qkv[tokens][heads·d | kvHeads·d | kvHeads·d] (token t at cache row
    /// pos0 + t, rotated as position pos0 + ropeShift + t): each q head, RMS-normalised per head first when <paramref name="queryNorm"/> is given (length d),
    /// rotated into q[tokens][heads·d]; each k head likewise (<paramref name="keyNorm"/>) stored in
    /// <paramref name="keys"/>[pos0 + t][kvHeads·d]; v stored in <paramref name="values"/> as it is. The cache (keys and
    /// values alike) is float32 or <see cref="ElementType.F16"/>, which stores each element rounded to half.
    /// </summary>
    void RopeKv(ITensor qkv, ITensor table, ITensor q, ITensor keys, ITensor values, int tokens, int heads, int kvHeads, int headDim, int pos0, int ropeShift,
        RopeLayout layout, ITensor? queryNorm, ITensor? keyNorm, float eps);

    /// <summary>
    /// Causal attention of q[tokens][heads][headDim] at positions pos0.. against keys/values[position][kvHeads][headDim]
    /// (positions 0 .. pos0 + tokens - 1 already stored); output has q's layout. Query head h reads key/value head
    /// h / (heads / kvHeads). The query at position p sees positions 0 .. p, and with a sliding
    /// <paramref name="window"/> W > 0 only max(0, p - W + 1) .. p, the last W including its own (Mistral's and
    /// Qwen2's <c>sliding_window</c>: transformers lets query i see key j when 0 &lt;= i - j &lt; W); 0 is unlimited.
    /// Not <paramref name="causal"/>: every query sees every position 0 .. pos0 + tokens - 1 (vision encoders; no window).
    /// Keys and values are both float32 or both <see cref="ElementType.F16"/> (a half-precision KV cache).
    /// </summary>
    void Attention(ITensor q, ITensor keys, ITensor values, ITensor output, int tokens, int pos0, int heads, int kvHeads, int headDim, float scale,
        bool causal = true, int window = 0);

    /// <summary>output[i] = silu(gate[i]) * up[i].</summary>
    void SwiGlu(ITensor gate, ITensor up, ITensor output, int count);

    /// <summary>y[i] = f(x[i]) (y may be x).</summary>
    void Activate(Activation function, ITensor x, ITensor y, int count);

    /// <summary>output[i] = a[i] op b[i mod bLength] (output may be a or b): a shorter b is broadcast over rows.</summary>
    void Binary(BinaryOp op, ITensor a, ITensor b, ITensor output, int count, int bLength);

    /// <summary>output[i] = a[i] + b[i] (output may be a).</summary>
    void Add(ITensor a, ITensor b, ITensor output, int count) => Binary(BinaryOp.Add, a, b, output, count, count);

    /// <summary>
    /// A strided 2-D copy: destination[destinationOffset + r·destinationStride + i] = source[sourceOffset + r·sourceStride + i]
    /// for r below <paramref name="rows"/> and i below <paramref name="width"/> (splitting fused projections, token shifts).
    /// The regions must not overlap. The destination may be <see cref="ElementType.F16"/> (values rounded to half; each
    /// pair of halves written whole, so an even width, offset and stride), the source float32.
    /// </summary>
    void CopyRows(ITensor source, int sourceOffset, int sourceStride, ITensor destination, int destinationOffset, int destinationStride, int width, int rows);

    /// <summary>destination[destinationOffset + i] = source[sourceOffset + i].</summary>
    void Copy(ITensor source, int sourceOffset, ITensor destination, int destinationOffset, int count) =>
        CopyRows(source, sourceOffset, count, destination, destinationOffset, count, count, 1);

    /// <summary>
    /// <see cref="Rope"/> with three positions per token, <paramref name="positions"/>[tokens][3] (whole numbers as
    /// floats, below the table's length): rotary pair i (of headDim/2) uses the first while i &lt; section0, the second
    /// while i &lt; section0 + section1, then the third. Qwen2-VL's multimodal RoPE (temporal, height, width) and its
    /// vision tower's 2-D RoPE (section0 = 0: rows, then columns).
    /// </summary>
    void RopePositions(ITensor x, ITensor table, ITensor positions, int tokens, int heads, int headDim, int section0, int section1, RopeLayout layout);

    /// <summary>Softmax of each row, in place.</summary>
    void Softmax(ITensor x, int rows, int cols);
}
