using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Engine.Formats;

namespace Engine.Runtime.Cpu;

/// <summary>The mixture-of-experts ops: expert stacks, routing, expert-indexed products, combination.</summary>
public sealed partial class CpuBackend
{
    public IWeightMatrix UploadExperts(IReadOnlyList<TensorInfo> experts, IReadOnlyList<byte[]> data, ITensorSource? shared = null)
    {
        var (info, stacked) = ExpertStack.Concatenate(experts, data);
        if (info.Layout.TailBytes == 0) return UploadMatrix(info, stacked, shared);
        // Per-matrix data (PCDVQ's rotations): the reference decodes each expert and keeps the stack in float32.
        int count = (int)experts[0].ElementCount;
        var values = new float[info.ElementCount];
        for (int e = 0; e < experts.Count; e++) experts[e].Format.Decode(experts[e], data[e], values.AsSpan(e * count, count), shared);
        return UploadMatrix(info with { Type = WeightType.F32, Parameters = default }, MemoryMarshal.AsBytes(values.AsSpan()));
    }

    public void MoeRoute(ITensor logits, ITensor routing, int tokens, int experts, int k, bool normalize, float scale)
    {
        MoeRouting.Check(tokens, experts, k, logits, routing);
        var l = Data(logits);
        var table = Data(routing);
        int slots = tokens * k;
        table[0] = slots;
        table[1] = experts;
        var taken = new bool[experts];
        for (int t = 0; t < tokens; t++)
        {
            var row = l.AsSpan(t * experts, experts);
            double top = double.NegativeInfinity, total = 0, chosen = 0;
            foreach (float v in row) top = Math.Max(top, v);
            foreach (float v in row) total += Math.Exp(v - top);
            Array.Clear(taken);
            for (int j = 0; j < k; j++)
            {
                int best = -1;
                for (int e = 0; e < experts; e++)
                    if (!taken[e] && (best < 0 || row[e] > row[best])) best = e;  // strictly greater: ties go to the lower index
                taken[best] = true;
                double weight = Math.Exp(row[best] - top) / total;
                chosen += weight;
                table[MoeRouting.Expert(t * k + j)] = best;
                table[MoeRouting.Weight(t * k + j)] = (float)weight;
            }
            double factor = (normalize ? 1 / chosen : 1) * scale;
            for (int j = 0; j < k; j++) table[MoeRouting.Weight(t * k + j)] = (float)(table[MoeRouting.Weight(t * k + j)] * factor);
        }
        int list = MoeRouting.List(slots, experts);
        for (int e = 0; e < experts; e++)
        {
            table[MoeRouting.GroupStart(slots, e)] = list - MoeRouting.List(slots, experts);
            for (int s = 0; s < slots; s++)
                if ((int)table[MoeRouting.Expert(s)] == e) table[list++] = s;
        }
        table[MoeRouting.GroupStart(slots, experts)] = slots;
    }

    public void ExpertLinear(IWeightMatrix experts, int expertCount, ITensor routing, ITensor x, ITensor y, int tokens, int k, bool inputPerSlot)
    {
        if (experts is LowRankExperts lowRank)
        {
            lowRank.ExpertLinear(this, expertCount, routing, x, y, tokens, k, inputPerSlot);
            return;
        }
        if (experts is not CpuWeightMatrix w || expertCount <= 0 || w.Rows % expertCount != 0)
            throw new ArgumentException($"expert weights must be a stack of {expertCount} equal matrices on this backend", nameof(experts));
        var table = Data(routing);
        var input = Data(x);
        var output = Data(y);
        int rows = w.Rows / expertCount, cols = w.Columns;
        Parallel.For(0, tokens * k, s =>
        {
            int expert = (int)table[MoeRouting.Expert(s)];
            var xRow = input.AsSpan((inputPerSlot ? s : s / k) * cols, cols);
            for (int r = 0; r < rows; r++) output[s * rows + r] = (float)Dot(w.Row(expert * rows + r), xRow);
        });
    }

    public void MoeCombine(ITensor expertOutputs, ITensor routing, ITensor? shared, ITensor? sharedScale, ITensor output, int tokens, int k, int dim, bool accumulate = false)
    {
        var y = Data(expertOutputs);
        var table = Data(routing);
        var sharedOut = shared is null ? null : Data(shared);
        var scale = sharedScale is null ? null : Data(sharedScale);
        var o = Data(output);
        for (int t = 0; t < tokens; t++)
        {
            for (int d = 0; d < dim; d++)
            {
                double sum = 0;
                for (int j = 0; j < k; j++) sum += (double)table[MoeRouting.Weight(t * k + j)] * y[(t * k + j) * dim + d];
                if (sharedOut is not null) sum += (scale?[t] ?? 1.0) * sharedOut[t * dim + d];
                o[t * dim + d] = accumulate ? o[t * dim + d] + (float)sum : (float)sum;
            }
        }
    }
}
