namespace Engine.Runtime;

/// <summary>
/// What a weight product does around the multiplication, so a decode graph needs no separate norm, activation or
/// residual ops (see <see cref="IBackend.Linear"/>). Each part may combine with the others.
/// </summary>
public readonly record struct ProductFusion
{
    /// <summary>RMSNorm of each input row first: x̂ = x / sqrt(mean(x²) + <see cref="NormEps"/>) · Norm (length = columns).</summary>
    public ITensor? Norm { get; init; }

    public float NormEps { get; init; }

    /// <summary>
    /// The matrix's rows come in (gate, up) pairs (<see cref="MatrixRows.Interleave"/>): output j of a token is
    /// silu(row 2j) · row 2j+1, half as many outputs as rows.
    /// </summary>
    public bool SwiGlu { get; init; }

    /// <summary>Adds the result to what the output holds (a residual stream) instead of replacing it.</summary>
    public bool Accumulate { get; init; }

    public bool IsNone => Norm is null && !SwiGlu && !Accumulate;

    /// <summary>Outputs per token for a matrix of <paramref name="rows"/> rows.</summary>
    public int Outputs(int rows) => SwiGlu ? rows / 2 : rows;

    public static ProductFusion RmsNormed(ITensor weight, float eps) => new() { Norm = weight, NormEps = eps };
}
