namespace Engine.Runtime.Models;

/// <summary>
/// down(silu(gate · x) ⊙ (up · x)). Gate and up are joined row by row into one matrix when their format allows
/// (<see cref="MatrixRows"/>), so one product with a SwiGLU epilogue computes both; otherwise two products and a
/// separate SwiGLU.
/// </summary>
internal sealed class SwiGluFeedForward : FeedForward
{
    private readonly IWeightMatrix? _gateUp;            // [2F, D], (gate, up) row pairs
    private readonly IWeightMatrix? _gate, _up;         // [F, D] each, when they could not be joined
    private readonly IWeightMatrix _down;               // [D, F]
    private readonly int _hidden;

    private SwiGluFeedForward(IWeightMatrix? gateUp, IWeightMatrix? gate, IWeightMatrix? up, IWeightMatrix down, int hidden) =>
        (_gateUp, _gate, _up, _down, _hidden) = (gateUp, gate, up, down, hidden);

    public static SwiGluFeedForward Load(WeightLoader loader, string prefix, int hidden, int dim)
    {
        var down = loader.Matrix(prefix + "down_proj.weight", dim, hidden);
        var gateUp = loader.Joined(prefix + "gate_up (joined)", [(prefix + "gate_proj.weight", hidden), (prefix + "up_proj.weight", hidden)], dim, interleave: true);
        return gateUp is not null
            ? new SwiGluFeedForward(gateUp, null, null, down, hidden)
            : new SwiGluFeedForward(null, loader.Matrix(prefix + "gate_proj.weight", hidden, dim), loader.Matrix(prefix + "up_proj.weight", hidden, dim), down, hidden);
    }

    public override int Width => _hidden;

    public override long BytesPerToken => Matrices.Sum(m => m.ByteSize);

    public override IEnumerable<IWeightMatrix> Matrices => _gateUp is not null ? [_gateUp, _down] : [_gate!, _up!, _down];

    public override void Forward(IBackend backend, ITensor input, ITensor output, int tokens, FeedForwardScratch scratch)
    {
        if (_gateUp is not null)
            backend.Linear(_gateUp, null, input, scratch.Gate, tokens, new ProductFusion { SwiGlu = true });
        else
        {
            backend.Linear(_gate!, null, input, scratch.Gate, tokens);
            backend.Linear(_up!, null, input, scratch.Up, tokens);
            backend.SwiGlu(scratch.Gate, scratch.Up, scratch.Gate, tokens * _hidden);
        }
        backend.Linear(_down, null, scratch.Gate, output, tokens);
    }

    /// <summary>x += FFN(RMSNorm(x)) in two products when gate and up are joined: the norm in the first, the residual add in the second.</summary>
    public override void AddTo(IBackend backend, ITensor x, ITensor norm, float eps, int tokens, FeedForwardScratch scratch)
    {
        if (_gateUp is null)
        {
            base.AddTo(backend, x, norm, eps, tokens, scratch);
            return;
        }
        backend.Linear(_gateUp, null, x, scratch.Gate, tokens, ProductFusion.RmsNormed(norm, eps) with { SwiGlu = true });
        backend.Linear(_down, null, scratch.Gate, x, tokens, new ProductFusion { Accumulate = true });
    }
}
