using Engine.Formats;

namespace Engine.Runtime;

/// <summary>
/// A stack of low-rank experts W_e ≈ U_e·V_e (+ R_e): each factor kind stacked over the experts (a U shared by every
/// expert, MoBiE's, kept once), so <see cref="IBackend.ExpertLinear"/> runs it as expert products of the factors,
/// t_s = V_{e_s} x, y_s = U_{e_s} t_s (one ordinary product for a shared U) (+ R_{e_s} x), reading only the chosen
/// experts' factors, with no host round trip. Backend-agnostic, as <see cref="LowRankMatrix"/> is.
/// </summary>
public sealed class LowRankExperts : IWeightMatrix
{
    private ITensor? _inner;          // [slots, Rank]
    private ITensor? _residualOutput; // [slots, rows of one expert]

    internal LowRankExperts(TensorInfo info, int expertCount, IWeightMatrix v, IWeightMatrix? sharedU, IWeightMatrix? u, IWeightMatrix? residual)
    {
        Info = info;
        ExpertCount = expertCount;
        V = v;
        SharedU = sharedU;
        U = u;
        Residual = residual;
    }

    public TensorInfo Info { get; }

    public int ExpertCount { get; }

    /// <summary>[E·Rank, Columns]: the stacked V_e.</summary>
    public IWeightMatrix V { get; }

    /// <summary>[rows, Rank]: the U every expert shares, or null when each has its own (<see cref="U"/>).</summary>
    public IWeightMatrix? SharedU { get; }

    /// <summary>[E·rows, Rank]: the stacked U_e, when not shared.</summary>
    public IWeightMatrix? U { get; }

    /// <summary>[E·rows, Columns]: the stacked residuals, when the experts add one.</summary>
    public IWeightMatrix? Residual { get; }

    public int Rows => ExpertCount * ExpertRows;

    public int Columns => V.Columns;

    private int ExpertRows => SharedU?.Rows ?? U!.Rows / ExpertCount;

    private int Rank => V.Rows / ExpertCount;

    public WeightType Type => Info.Type;

    public FormatParameters Parameters => Info.Parameters;

    /// <summary>Every expert's factors, a shared U counted once per expert as a per-expert product would read it.</summary>
    public long ByteSize => V.ByteSize + (U?.ByteSize ?? SharedU!.ByteSize * ExpertCount) + (Residual?.ByteSize ?? 0);

    internal void ExpertLinear(IBackend backend, int expertCount, ITensor routing, ITensor x, ITensor y, int tokens, int k, bool inputPerSlot)
    {
        if (expertCount != ExpertCount)
            throw new ArgumentException($"low-rank experts '{Info.Name}' hold {ExpertCount} experts, not {expertCount}", nameof(expertCount));
        int slots = tokens * k;
        var inner = ScratchTensor.Ensure(backend, ref _inner, (long)slots * Rank);
        backend.ExpertLinear(V, ExpertCount, routing, x, inner, tokens, k, inputPerSlot);
        if (SharedU is not null)
            backend.Linear(SharedU, null, inner, y, slots);
        else
            backend.ExpertLinear(U!, ExpertCount, routing, inner, y, tokens, k, inputPerSlot: true);
        if (Residual is null) return;
        var residualOutput = ScratchTensor.Ensure(backend, ref _residualOutput, (long)slots * ExpertRows);
        backend.ExpertLinear(Residual, ExpertCount, routing, x, residualOutput, tokens, k, inputPerSlot);
        backend.Add(y, residualOutput, y, slots * ExpertRows);
    }
}
