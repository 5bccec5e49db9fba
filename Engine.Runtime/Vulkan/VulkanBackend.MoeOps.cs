using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Runtime.Vulkan;

/// <summary>The mixture-of-experts dispatches: expert stacks, routing, expert-indexed products, combination.</summary>
public sealed unsafe partial class VulkanBackend
{
    public void MoeRoute(ITensor logits, ITensor routing, int tokens, int experts, int k, bool normalize, float scale)
    {
        MoeRouting.Check(tokens, experts, k, logits, routing);
        var kernel = Kernel("moe_route", 2, (uint)sizeof(MoeRoutePush));
        _recorder.Dispatch(kernel, [Tensor(logits).Slice, Tensor(routing).Slice], [Access.Read, Access.Write],
            new MoeRoutePush((uint)tokens, (uint)experts, (uint)k, normalize ? 1u : 0u, scale), 1);
    }

    public IWeightMatrix UploadExperts(IReadOnlyList<TensorInfo> experts, IReadOnlyList<byte[]> data, ITensorSource? shared = null)
    {
        var (info, stacked) = ExpertStack.Concatenate(experts, data);
        if (info.Type != WeightType.Pcdvq) return UploadMatrix(info, stacked, shared);
        var matrix = UploadStreams(info, stacked);
        var signs = experts.Select((expert, e) => PcdvqFormat.Signs(expert, data[e])).ToArray();
        return WithRotation(matrix, ([.. signs.SelectMany(s => s.Input)], [.. signs.SelectMany(s => s.Output)]), (int)experts[0].Rows, shared);
    }

    public void ExpertLinear(IWeightMatrix experts, int expertCount, ITensor routing, ITensor x, ITensor y, int tokens, int k, bool inputPerSlot)
    {
        if (experts is LowRankExperts lowRank)
        {
            lowRank.ExpertLinear(this, expertCount, routing, x, y, tokens, k, inputPerSlot);
            return;
        }
        if (experts is not VulkanWeightMatrix w)
            throw new ArgumentException("the expert weights belong to another backend", nameof(experts));
        if (expertCount <= 0 || w.Rows % expertCount != 0)
            throw new ArgumentException($"a stack of {w.Rows} rows does not split into {expertCount} experts", nameof(experts));
        int expertRows = w.Rows / expertCount;
        if (w.Chunks.Any(c => c.FirstRow % expertRows != 0 || c.Rows % expertRows != 0))
            throw new ArgumentException($"tensor '{w.Info.Name}' was not uploaded as a stack of {expertCount} experts", nameof(experts));
        if (expertCount > MaxGroupsPerDimension || k > MaxGroupsPerDimension || MatVecTuning.Groups(expertRows, MatVecRows(w)) > MaxGroupsPerDimension)
            throw new NotSupportedException($"{expertCount} experts of {expertRows} rows, {k} per token, exceed one dispatch's workgroup counts");
        var table = Tensor(routing);
        int divisor = inputPerSlot ? 1 : k;
        if (w.Rotated is not { } rotation)
        {
            ExpertProduct(w, expertRows, table, Tensor(x), w.Columns, Tensor(y), tokens, k, divisor);
            return;
        }
        // PCDVQ experts: each slot's input rotated with its expert's signs, the product, then the output rotation.
        int slots = tokens * k, padded = (int)w.Layout.PaddedColumns;
        var rotatedInput = Tensor(ScratchTensor.Ensure(this, ref _rotatedInput, (long)slots * padded));
        var rotatedOutput = Tensor(ScratchTensor.Ensure(this, ref _rotatedOutput, (long)slots * expertRows));
        HadamardDispatch(Tensor(x), rotatedInput, rotation.InputSigns, null, padded, w.Columns, rotation.InputBlock, outputSide: false, slots, table, divisor);
        ExpertProduct(w, expertRows, table, rotatedInput, padded, rotatedOutput, tokens, k, divisor: 1);
        HadamardDispatch(rotatedOutput, Tensor(y), rotation.OutputSigns, null, expertRows, expertRows, rotation.OutputBlock, outputSide: true, slots, table);
    }

    /// <summary>
    /// The expert-indexed product: one token (decode) is a mat-vec per routing slot (workgroup y = slot); a batch is a
    /// tiled product per expert over the slots the routing grouped under it, which reads each chosen expert once for
    /// all its tokens where a mat-vec per slot would read it once per slot (measured slower from 2 tokens on). Both
    /// read the choices on the device.
    /// </summary>
    private void ExpertProduct(VulkanWeightMatrix w, int expertRows, VulkanTensor routing, VulkanTensor input, int inputColumns, VulkanTensor output, int tokens, int k, int divisor)
    {
        var tuning = MatVec;
        uint rows = MatVecRows(w);
        var tiling = tokens == 1 ? default : ChooseMatMul(expertRows, inputColumns, tokens, experts: true);
        var kernel = tokens == 1
            ? MatVecKernel(tuning.Variant("matvec_experts_"), w, tuning.Constants(rows, 1, inputColumns, 0))
            : MatMulKernel("matmul_experts_", w, tiling.Constants(inputColumns % 4 == 0, expertRows % 4 == 0));
        BufferSlice[] slices = [default, input.Slice, output.Slice, Whole(_empty), w.Aux ?? Whole(_empty), routing.Slice, Whole(_empty)];
        foreach (var chunk in w.Chunks)
        {
            slices[0] = Whole(chunk.Buffer);
            var push = WeightPush.For(w, chunk, hasBias: false, tokens: divisor, outStride: 0, inputColumns);
            push.ExpertRows = (uint)expertRows;
            if (tokens == 1)
                _recorder.Dispatch(kernel, slices, ExpertAccess, push, MatVecTuning.Groups(expertRows, rows), (uint)k);
            else
                _recorder.Dispatch(kernel, slices, ExpertAccess, push, ((uint)expertRows + tiling.TileRows - 1) / tiling.TileRows,
                    ((uint)tokens + tiling.TileTokens - 1) / tiling.TileTokens, (uint)(w.Rows / expertRows));
        }
    }

    public void MoeCombine(ITensor expertOutputs, ITensor routing, ITensor? shared, ITensor? sharedScale, ITensor output, int tokens, int k, int dim, bool accumulate = false)
    {
        var kernel = Kernel("moe_combine", 5, (uint)sizeof(MoeCombinePush));
        var (gx, gy) = Groups((uint)(tokens * dim + 63) / 64);
        _recorder.Dispatch(kernel,
            [Tensor(routing).Slice, Tensor(expertOutputs).Slice, shared is null ? Whole(_empty) : Tensor(shared).Slice,
                sharedScale is null ? Whole(_empty) : Tensor(sharedScale).Slice, Tensor(output).Slice],
            [Access.Read, Access.Read, Access.Read, Access.Read, Access.Write],
            new MoeCombinePush((uint)tokens, (uint)k, (uint)dim, shared is null ? 0u : 1u, sharedScale is null ? 0u : 1u, accumulate ? 1u : 0u), gx, gy);
    }
}
