using Engine.Formats;

namespace Engine.Runtime;

/// <summary>Mixture of experts: stacked experts, routing, expert-indexed products and their combination.</summary>
public interface IMoeOps
{
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
}
