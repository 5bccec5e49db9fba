namespace Engine.Runtime;

/// <summary>
/// Rows of a [tokens][width] tensor seen from a column offset: row t starts at Offset + t·Stride. It names one part of
/// a fused projection's output (Mamba's x, z, dt, B and C) so an op reads it in place, without a copy.
/// </summary>
public readonly record struct RowView(ITensor Tensor, int Offset, int Stride)
{
    public static RowView Dense(ITensor tensor, int width) => new(tensor, 0, width);
}

/// <summary>
/// The inputs of a selective state-space scan (Mamba-1 and Mamba-2), for channels c = h·HeadDim + p (head h, column p):
/// dt = clamp(softplus(Dt[t, h] + DtBias[h]), DtMin, DtMax);
/// state[c, n] ← exp(dt·A[h, n])·state[c, n] + dt·B[t, g, n]·X[t, c];
/// y[t, c] = (Σₙ C[t, g, n]·state[c, n] + D[h]·X[t, c])·silu(Z[t, c]),
/// where g = h / (Heads / Groups) is the head's group of B and C. A holds [Heads][StateSize] decay rates (Mamba-1,
/// one head per channel) or [Heads] (Mamba-2, one per head, the same for every state column).
/// </summary>
public sealed record SsmInputs(
    RowView X, RowView Dt, RowView B, RowView C, RowView Z,
    ITensor DtBias, ITensor A, ITensor D,
    int Heads, int HeadDim, int StateSize, int Groups, float DtMin, float DtMax)
{
    public int Channels => Heads * HeadDim;

    /// <summary>True when A has one rate per head rather than one per (head, state column).</summary>
    public bool ScalarDecay => A.Length == Heads;

    /// <summary>The same inputs from token <paramref name="token"/> on.</summary>
    public SsmInputs From(int token) => this with
    {
        X = X with { Offset = X.Offset + token * X.Stride },
        Dt = Dt with { Offset = Dt.Offset + token * Dt.Stride },
        B = B with { Offset = B.Offset + token * B.Stride },
        C = C with { Offset = C.Offset + token * C.Stride },
        Z = Z with { Offset = Z.Offset + token * Z.Stride },
    };

    /// <summary>Throws when the sizes do not fit together.</summary>
    public void Validate()
    {
        if (Heads <= 0 || HeadDim <= 0 || StateSize <= 0 || Groups <= 0 || Heads % Groups != 0)
            throw new ArgumentException($"unsupported scan shape: {Heads} heads of {HeadDim}, state {StateSize}, {Groups} groups");
        if (A.Length != Heads && A.Length != Heads * StateSize)
            throw new ArgumentException($"A holds {A.Length} values, {Heads} or {Heads * StateSize} expected");
        if (DtBias.Length < Heads || D.Length < Heads)
            throw new ArgumentException($"dt bias ({DtBias.Length}) and D ({D.Length}) need one value per head ({Heads})");
    }
}
