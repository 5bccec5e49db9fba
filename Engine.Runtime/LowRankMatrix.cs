using Engine.Formats;

namespace Engine.Runtime;

/// <summary>
/// A low-rank weight W ≈ U·V (+ R) on a backend: the factors as matrices of their own, in their own formats, so
/// y = W x runs as t = V x, y = U t (+ bias), then y += R x, through the backend's own Linear and Add (recorded
/// into the same command buffer on Vulkan: no extra submit, no host round trip). Backend-agnostic: both backends
/// hand a low-rank weight to <see cref="Linear"/>.
/// </summary>
public sealed class LowRankMatrix : IWeightMatrix
{
    private ITensor? _inner;          // [tokens, Rank]: V x
    private ITensor? _residualOutput; // [tokens, Rows]: R x

    internal LowRankMatrix(IBackend backend, TensorInfo info, IWeightMatrix u, IWeightMatrix v, IWeightMatrix? residual)
    {
        Backend = backend;
        Info = info;
        U = u;
        V = v;
        Residual = residual;
    }

    public IBackend Backend { get; }

    public TensorInfo Info { get; }

    /// <summary>[Rows, Rank]; the same instance for every tensor that shares it (MoBiE).</summary>
    public IWeightMatrix U { get; }

    /// <summary>[Rank, Columns].</summary>
    public IWeightMatrix V { get; }

    /// <summary>[Rows, Columns], when the tensor adds one.</summary>
    public IWeightMatrix? Residual { get; }

    public int Rows => U.Rows;

    public int Columns => V.Columns;

    public int Rank => V.Rows;

    public WeightType Type => Info.Type;

    public FormatParameters Parameters => Info.Parameters;

    /// <summary>
    /// The factors' bytes: what one pass reads. A shared U counts in full for every tensor that uses it, since each
    /// product reads it again; the bytes stored are counted once (<see cref="StoredSizes"/>).
    /// </summary>
    public long ByteSize => U.ByteSize + V.ByteSize + (Residual?.ByteSize ?? 0);

    /// <summary>y = U (V x) (+ bias) (+ R x) for <paramref name="tokens"/> tokens.</summary>
    internal void Linear(IBackend backend, ITensor? bias, ITensor x, ITensor y, int tokens)
    {
        if (!ReferenceEquals(backend, Backend))
            throw new ArgumentException($"low-rank matrix '{Info.Name}' was uploaded to another backend");
        var inner = ScratchTensor.Ensure(backend, ref _inner, (long)tokens * Rank);
        backend.Linear(V, null, x, inner, tokens);
        backend.Linear(U, bias, inner, y, tokens);
        if (Residual is null) return;
        var residualOutput = ScratchTensor.Ensure(backend, ref _residualOutput, (long)tokens * Rows);
        backend.Linear(Residual, null, x, residualOutput, tokens);
        backend.Add(y, residualOutput, y, tokens * Rows);
    }

    /// <summary>The error for an embedding lookup in a low-rank table: a row of U·V is not stored anywhere.</summary>
    internal NotSupportedException EmbeddingNotSupported() =>
        new($"tensor '{Info.Name}' is {Info.Format.Name}: an embedding table cannot be low-rank; store it in a plain or quantized format");
}
