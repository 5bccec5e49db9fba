using Engine.Formats;

namespace Engine.Runtime;

/// <summary>A float32 activation or parameter vector living on a backend; its length is its capacity in floats.</summary>
public interface ITensor
{
    int Length { get; }
}

/// <summary>Element-wise functions of <see cref="IBackend.Activate"/>.</summary>
public enum Activation
{
    /// <summary>x · sigmoid(x).</summary>
    Silu,
    /// <summary>x · Φ(x), the exact (erf) form.</summary>
    Gelu,
    /// <summary>The tanh approximation of GELU.</summary>
    GeluTanh,
    /// <summary>x · sigmoid(1.702 x) (CLIP).</summary>
    QuickGelu,
    Sigmoid,
    /// <summary>log(1 + eˣ), x itself above 20 as PyTorch does.</summary>
    Softplus,
    /// <summary>max(x, 0)² (RWKV channel mix).</summary>
    ReluSquared,
    Tanh,
    Exp,
}

/// <summary>Element-wise binary operators of <see cref="IBackend.Binary"/>.</summary>
public enum BinaryOp
{
    Add,
    Sub,
    Mul,
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
    /// <paramref name="keys"/>[pos0 + t][kvHeads·d]; v stored in <paramref name="values"/> as it is.
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
    /// The regions must not overlap.
    /// </summary>
    void CopyRows(ITensor source, int sourceOffset, int sourceStride, ITensor destination, int destinationOffset, int destinationStride, int width, int rows);

    /// <summary>destination[destinationOffset + i] = source[sourceOffset + i].</summary>
    void Copy(ITensor source, int sourceOffset, ITensor destination, int destinationOffset, int count) =>
        CopyRows(source, sourceOffset, count, destination, destinationOffset, count, count, 1);

    /// <summary>Writes host floats into a tensor at an offset, after every op recorded so far (a synchronisation point on a GPU).</summary>
    void Write(ITensor destination, int offset, ReadOnlySpan<float> values);

    /// <summary>
    /// RWKV-4 time mixing (WKV) of <paramref name="tokens"/> tokens over <paramref name="channels"/> independent channels,
    /// in the numerically stable form of Hugging Face's <c>rwkv_linear_attention_cpu</c>: with w = decay[c] (already
    /// -exp(time_decay)) and u = first[c], output[t, c] = (e^p·num + e^(u+k)·v) / (e^p·den + e^(u+k)) and the state
    /// decays by e^w before adding e^k·v. state = [num | den | max], each <paramref name="channels"/> long, is read and
    /// left updated, so a prompt may be fed in pieces; a fresh state has max = -1e38.
    /// </summary>
    void Wkv4(ITensor decay, ITensor first, ITensor k, ITensor v, ITensor state, ITensor output, int tokens, int channels);

    /// <summary>
    /// RWKV-6 time mixing of r, k, v, decay [tokens][heads·headSize]: per head, with S = state[head][key j][value i],
    /// output[t, i] = Σ_j r[j] (first[j] k[j] v[i] + S[j][i]) and then S[j][i] = decay[j] S[j][i] + k[j] v[i]
    /// (decay is the multiplier in (0, 1), first = time_faaaa [heads·headSize]). The state is read and left updated.
    /// </summary>
    void Wkv6(ITensor r, ITensor k, ITensor v, ITensor decay, ITensor first, ITensor state, ITensor output, int tokens, int heads, int headSize);

    /// <summary>
    /// RWKV-7 time mixing of r, decay, k, v, a, b [tokens][heads·headSize]: per head, with S = state[head][value i][key j],
    /// S = S·diag(decay) + (S a) bᵀ + v kᵀ, then output[t, i] = Σ_j S[i][j] r[j] (the upstream kernel's (r, w, k, v, a, b)
    /// with a = -kk, b = kk·a). The state is read and left updated.
    /// </summary>
    void Wkv7(ITensor r, ITensor decay, ITensor k, ITensor v, ITensor a, ITensor b, ITensor state, ITensor output, int tokens, int heads, int headSize);

    /// <summary>
    /// Causal depthwise convolution over tokens followed by SiLU (Mamba): for channel c below <paramref name="channels"/>,
    /// y[t, c] = silu(bias[c] + Σₖ weight[c·K + k]·in(t - K + 1 + k)), where in(s) is x's row s for s ≥ 0 and, before
    /// the batch, the carried <paramref name="state"/> [channels][K-1] (the channel's last K-1 inputs, oldest first).
    /// The state is then advanced past the batch, so calls over pieces of a sequence equal one call over the whole.
    /// </summary>
    void CausalConv1d(RowView x, ITensor weight, ITensor? bias, ITensor state, ITensor y, int tokens, int channels, int kernel);

    /// <summary>
    /// The selective scan of <see cref="SsmInputs"/> in its recurrent form, token after token: reads and advances
    /// <paramref name="state"/> [channels][stateSize] and writes y [tokens][channels].
    /// </summary>
    void SelectiveScan(SsmInputs inputs, ITensor state, ITensor y, int tokens);

    /// <summary>
    /// The same scan by Mamba-2's state-space duality, for one decay rate per head: chunks of <paramref name="chunkSize"/>
    /// tokens are computed in the quadratic (attention-like) form, and the state is passed from chunk to chunk. It equals
    /// <see cref="SelectiveScan"/> up to rounding.
    /// </summary>
    void SsdScan(SsmInputs inputs, ITensor state, ITensor y, int tokens, int chunkSize);

    /// <summary>
    /// Uploads the experts of one projection (equal shapes, one format and parameters) as one stack [E, rows, columns]
    /// for <see cref="ExpertLinear"/>; <paramref name="shared"/> supplies referenced tensors (a codebook).
    /// </summary>
    IWeightMatrix UploadExperts(IReadOnlyList<TensorInfo> experts, IReadOnlyList<byte[]> data, ITensorSource? shared = null);

    /// <summary>
    /// Mixture-of-experts routing: softmax over each token's <paramref name="experts"/> router logits
    /// (logits[t, e]), the <paramref name="k"/> most probable experts (ties to the lower index), their probabilities
    /// renormalised to sum 1 when <paramref name="normalize"/>, then times <paramref name="scale"/>. Writes the
    /// routing table of <see cref="MoeRouting"/> (the choices and the slots grouped by expert) into <paramref name="routing"/>.
    /// </summary>
    void MoeRoute(ITensor logits, ITensor routing, int tokens, int experts, int k, bool normalize, float scale);

    /// <summary>
    /// The selected experts' products: for each routing slot s = t·k + j, y[s, r] = W[e_s·F + r, :] · x[row, :] with
    /// e_s the slot's expert, F = experts.Rows / expertCount the rows of one expert (the stacked matrix holds expert e
    /// in rows [e·F, (e+1)·F)) and row = s when <paramref name="inputPerSlot"/>, else the slot's token t. Only the
    /// selected experts' weights are read; the expert choice is read from <paramref name="routing"/> on the device.
    /// </summary>
    void ExpertLinear(IWeightMatrix experts, int expertCount, ITensor routing, ITensor x, ITensor y, int tokens, int k, bool inputPerSlot);

    /// <summary>
    /// output[t, d] = Σ_j weight_{t,j} · expertOutputs[t·k + j, d] (+ sharedScale[t] · shared[t, d], the scale 1
    /// when absent): the routed experts' weighted sum plus an optional shared expert, added to what output holds when
    /// <paramref name="accumulate"/> (the residual stream).
    /// </summary>
    void MoeCombine(ITensor expertOutputs, ITensor routing, ITensor? shared, ITensor? sharedScale, ITensor output, int tokens, int k, int dim, bool accumulate = false);

    /// <summary>
    /// <see cref="Rope"/> with three positions per token, <paramref name="positions"/>[tokens][3] (whole numbers as
    /// floats, below the table's length): rotary pair i (of headDim/2) uses the first while i &lt; section0, the second
    /// while i &lt; section0 + section1, then the third. Qwen2-VL's multimodal RoPE (temporal, height, width) and its
    /// vision tower's 2-D RoPE (section0 = 0: rows, then columns).
    /// </summary>
    void RopePositions(ITensor x, ITensor table, ITensor positions, int tokens, int heads, int headDim, int section0, int section1, RopeLayout layout);

    /// <summary>Softmax of each row, in place.</summary>
    void Softmax(ITensor x, int rows, int cols);

    /// <summary>Completes every recorded op and copies the first destination.Length floats of the tensor out.</summary>
    void Read(ITensor tensor, Span<float> destination);

    /// <summary>
    /// RWKV's token shift with its interpolations, in one op: for each output i (at most 6) and t below
    /// <paramref name="tokens"/>, c below <paramref name="dim"/>,
    /// outputs[i][t, c] = x[t, c] + (x[t-1, c] - x[t, c]) · m_i[t, c], where row x[-1] is <paramref name="state"/> [dim]
    /// (the last row of the previous call) and m_i[t, c] = mixes[i·dim + c] (+ tokenMixes[(t·outputs + i)·dim + c] when
    /// <paramref name="tokenMixes"/> is given: RWKV-6's data-dependent interpolation, [tokens][outputs][dim]). Then, when
    /// <paramref name="updateState"/>, state = x's row tokens - 1. The outputs must not overlap x, state or the mixes.
    /// </summary>
    void TokenShiftMix(ITensor x, ITensor state, ITensor mixes, ITensor? tokenMixes, ReadOnlySpan<ITensor> outputs, int tokens, int dim, bool updateState);
}
