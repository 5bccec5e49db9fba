using Engine.Formats;

namespace Engine.Runtime;

/// <summary>The recurrent modules: RWKV time mixing and token shift, Mamba convolution and scans, each carrying its state.</summary>
public interface IRecurrentOps
{
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
    /// RWKV's token shift with its interpolations, in one op: for each output i (at most 6) and t below
    /// <paramref name="tokens"/>, c below <paramref name="dim"/>,
    /// outputs[i][t, c] = x[t, c] + (x[t-1, c] - x[t, c]) · m_i[t, c], where row x[-1] is <paramref name="state"/> [dim]
    /// (the last row of the previous call) and m_i[t, c] = mixes[i·dim + c] (+ tokenMixes[(t·outputs + i)·dim + c] when
    /// <paramref name="tokenMixes"/> is given: RWKV-6's data-dependent interpolation, [tokens][outputs][dim]). Then, when
    /// <paramref name="updateState"/>, state = x's row tokens - 1. The outputs must not overlap x, state or the mixes.
    /// </summary>
    void TokenShiftMix(ITensor x, ITensor state, ITensor mixes, ITensor? tokenMixes, ReadOnlySpan<ITensor> outputs, int tokens, int dim, bool updateState);
}
