namespace Engine.Runtime.Models;

/// <summary>down(silu(gate · x) ⊙ (up · x)).</summary>
internal sealed class SwiGluFeedForward(IWeightMatrix gate, IWeightMatrix up, IWeightMatrix down) : FeedForward
{
    public static SwiGluFeedForward Load(WeightLoader loader, string prefix, int hidden, int dim) => new(
        loader.Matrix(prefix + "gate_proj.weight", hidden, dim),
        loader.Matrix(prefix + "up_proj.weight", hidden, dim),
        loader.Matrix(prefix + "down_proj.weight", dim, hidden));

    public override int Width => gate.Rows;

    public override long BytesPerToken => gate.ByteSize + up.ByteSize + down.ByteSize;

    public override IEnumerable<IWeightMatrix> Matrices => [gate, up, down];

    public override void Forward(IBackend backend, ITensor input, ITensor output, int tokens, FeedForwardScratch scratch)
    {
        backend.Linear(gate, null, input, scratch.Gate, tokens);
        backend.Linear(up, null, input, scratch.Up, tokens);
        backend.SwiGlu(scratch.Gate, scratch.Up, scratch.Gate, tokens * gate.Rows);
        backend.Linear(down, null, scratch.Gate, output, tokens);
    }
}
