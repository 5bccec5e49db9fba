using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Runtime.Vulkan;

/// <summary>The core ops of a decoder recorded as dispatches: products (mat-vec, mat-mat, rotated), norms, rotary embedding, attention, element-wise ops.</summary>
public sealed unsafe partial class VulkanBackend
{
    public void Embedding(IWeightMatrix table, ReadOnlySpan<int> tokens, ITensor output)
    {
        if (table is LowRankMatrix lowRank) throw lowRank.EmbeddingNotSupported();
        var matrix = (VulkanWeightMatrix)table;
        if (matrix.Rotated is not null)
            throw new NotSupportedException($"tensor '{matrix.Info.Name}': a {matrix.Info.Format.Name} table mixes rows through its rotation, so it cannot be an embedding lookup on this backend; keep embeddings in another format");
        var o = Tensor(output);
        if (tokens.Length == 0) return;
        if (_tokensUsed + tokens.Length > MaxTokensPerStep)
            throw new ArgumentException($"more than {MaxTokensPerStep} tokens in one step");
        foreach (int token in tokens)
        {
            if ((uint)token >= (uint)matrix.Rows)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary (0..{matrix.Rows - 1})");
        }
        var target = new Span<int>(_tokens.Mapped + _tokensUsed * sizeof(int), tokens.Length);
        tokens.CopyTo(target);
        var tokenSlice = new BufferSlice(_tokens, (ulong)_tokensUsed * sizeof(int), (ulong)tokens.Length * sizeof(int));
        int alignedInts = (int)(_alignment / sizeof(int));
        _tokensUsed += (tokens.Length + alignedInts - 1) / alignedInts * alignedInts;
        var kernel = WeightKernel("embedding_", matrix);
        foreach (var chunk in matrix.Chunks)
        {
            var push = WeightPush.For(matrix, chunk, hasBias: false, tokens: tokens.Length, outStride: 0, inputColumns: matrix.Columns);
            _recorder.Dispatch(kernel, [Whole(chunk.Buffer), tokenSlice, o.Slice, Whole(_empty), Whole(_empty)], EmbeddingAccess, push, (uint)tokens.Length);
        }
    }

    public void Linear(IWeightMatrix weight, ITensor? bias, ITensor x, ITensor y, int tokens, ProductFusion fusion = default)
    {
        if (weight is LowRankMatrix lowRank)
        {
            _unfused.Run(this, weight.Rows, weight.Columns, x, y, tokens, fusion, (input, output) => lowRank.Linear(this, bias, input, output, tokens));
            return;
        }
        var w = (VulkanWeightMatrix)weight;
        if (w.Rotated is { } rotation)
        {
            _unfused.Run(this, w.Rows, w.Columns, x, y, tokens, fusion,
                (input, output) => LinearRotated(w, rotation, bias, Tensor(input), Tensor(output), tokens));
            return;
        }
        if (fusion.SwiGlu && (w.Rows % 2 != 0 || w.Chunks.Any(c => c.FirstRow % 2 != 0 || c.Rows % 2 != 0)))
            throw new ArgumentException($"tensor '{w.Info.Name}': a SwiGLU product needs (gate, up) row pairs, whole in every chunk");
        Product(w, bias is null ? null : Tensor(bias), Tensor(x), w.Columns, Tensor(y), tokens, fusion);
    }

    /// <summary>y = S_o·H·(W'·(H·S_i·x)) (+ bias): a Hadamard dispatch on each side of the product, all in the same command buffer.</summary>
    private void LinearRotated(VulkanWeightMatrix w, VulkanWeightMatrix.Rotation rotation, ITensor? bias, VulkanTensor x, VulkanTensor y, int tokens)
    {
        int padded = (int)w.Layout.PaddedColumns;
        var rotatedInput = Tensor(ScratchTensor.Ensure(this, ref _rotatedInput, (long)tokens * padded));
        var rotatedOutput = Tensor(ScratchTensor.Ensure(this, ref _rotatedOutput, (long)tokens * w.Rows));
        HadamardDispatch(x, rotatedInput, rotation.InputSigns, null, padded, w.Columns, rotation.InputBlock, outputSide: false, tokens);
        Product(w, null, rotatedInput, padded, rotatedOutput, tokens, default);
        HadamardDispatch(rotatedOutput, y, rotation.OutputSigns, bias is null ? null : Tensor(bias), w.Rows, w.Rows, rotation.OutputBlock, outputSide: true, tokens);
    }

    /// <param name="routing">For a stack of experts: the routing table; rows are then routing slots, each with its expert's signs.</param>
    /// <param name="divisor">With <paramref name="routing"/>: slots sharing one source row.</param>
    private void HadamardDispatch(VulkanTensor source, VulkanTensor destination, VulkanTensor signs, VulkanTensor? bias, int length, int sourceLength, int block, bool outputSide, int tokens,
        VulkanTensor? routing = null, int divisor = 1)
    {
        var push = new HadamardPush((uint)length, (uint)sourceLength, (uint)block, outputSide ? 1u : 0u, bias is null ? 0u : 1u, (uint)divisor);
        BufferSlice[] slices = [source.Slice, destination.Slice, signs.Slice, bias?.Slice ?? Whole(_empty)];
        if (routing is null)
            _recorder.Dispatch(Kernel("hadamard", 4, (uint)sizeof(HadamardPush)), slices, [Access.Read, Access.Write, Access.Read, Access.Read], push, (uint)(length / block), (uint)tokens);
        else
            _recorder.Dispatch(Kernel("hadamard_experts", 5, (uint)sizeof(HadamardPush)), [.. slices, routing.Slice],
                [Access.Read, Access.Write, Access.Read, Access.Read, Access.Read], push, (uint)(length / block), (uint)tokens);
    }

    /// <summary>The mat-vec (one token) or mat-mat product of the stored matrix, decoding its format in place, with its fusions.</summary>
    private void Product(VulkanWeightMatrix w, VulkanTensor? bias, VulkanTensor input, int inputColumns, VulkanTensor output, int tokens, ProductFusion fusion)
    {
        var biasSlice = bias?.Slice ?? Whole(_empty);
        var aux = w.Aux ?? Whole(_empty);
        var norm = fusion.Norm is null ? Whole(_empty) : Tensor(fusion.Norm).Slice;
        uint fusions = (fusion.Norm is null ? 0 : WeightPush.FuseNorm) | (fusion.SwiGlu ? WeightPush.FuseSwiGlu : 0)
            | (fusion.Accumulate ? WeightPush.FuseAccumulate : 0);
        // Up to MaxColumns tokens (decode, small batches, speculative checks): the mat-vec, each weight read once for all.
        var tuning = MatVec;
        uint rows = MatVecRows(w);
        var matVec = tokens <= tuning.MaxColumns
            ? MatVecKernel(tuning.Variant("matvec_"), w, tuning.Constants(rows, tokens, inputColumns, fusions))
            : null;
        foreach (var chunk in w.Chunks)
        {
            var push = WeightPush.For(w, chunk, bias is not null, tokens, fusion.Outputs(w.Rows), inputColumns);
            push.Fusion = fusions;
            push.NormEps = fusion.NormEps;
            BufferSlice[] slices = [Whole(chunk.Buffer), input.Slice, output.Slice, biasSlice, aux, Whole(_empty), norm];
            var access = fusion.Accumulate ? AccumulateAccess : LinearAccess;
            if (matVec is not null)
            {
                var (gx, gy) = Groups(MatVecTuning.Groups(chunk.Rows, rows));
                _recorder.Dispatch(matVec, slices, access, push, gx, gy);
            }
            else
            {
                MatMul(w, chunk, push, slices, access, tokens);
            }
        }
    }

    private MatMulTiling ChooseMatMul(int rows, int columns, int tokens, bool experts)
    {
        var tiling = MatMulTilingOverride ?? MatMulTiling.Choose(_context.Info, rows, columns, tokens, experts).With(MatMulTiling.Overrides);
        if (experts) tiling = tiling with { Split = 1 };
        tiling.Check(_context.Limits.MaxComputeSharedMemorySize);
        return tiling;
    }

    /// <summary>The mat-mat pipeline of a weight format at a tiling (one pipeline per format and specialization).</summary>
    private ComputeKernel MatMulKernel(string op, VulkanWeightMatrix w, uint[] constants)
    {
        string name = op + w.Info.Format.ShaderTag(w.Parameters);
        string key = name + "#" + string.Join(',', constants);
        if (!_kernels.TryGetValue(key, out var kernel))
        {
            kernel = new ComputeKernel(_context, name, WeightPush.ProductBindings, (uint)sizeof(WeightPush), constants);
            _kernels[key] = kernel;
        }
        return kernel;
    }

    /// <summary>
    /// One chunk's mat-mat product (matmul.comp): a workgroup per tile of rows and tokens; with split-k, partial sums
    /// per column range into a scratch tensor (binding 5), then the same shader with REDUCE adds them up and applies the epilogue.
    /// </summary>
    private void MatMul(VulkanWeightMatrix w, VulkanWeightMatrix.Chunk chunk, WeightPush push, BufferSlice[] slices, Access[] access, int tokens)
    {
        var tiling = ChooseMatMul(chunk.Rows, (int)push.Cols, tokens, experts: false);
        bool vec4 = push.Cols % 4 == 0;
        // The partial sums must fit one binding (the scratch tensor rounds its length up to a power of two), and the
        // reduction takes a workgroup row per token.
        long maxFloats = (long)(_context.MaxBindingRange / sizeof(float)) / 2;
        while (tiling.Split > 1 && (long)tiling.Split * tokens * (chunk.Rows + 1) > maxFloats) tiling = tiling with { Split = tiling.Split - 1 };
        if (tokens > MaxGroupsPerDimension) tiling = tiling with { Split = 1 };
        uint groupsX = ((uint)chunk.Rows + tiling.TileRows - 1) / tiling.TileRows;
        uint groupsY = ((uint)tokens + tiling.TileTokens - 1) / tiling.TileTokens;
        if (groupsY > MaxGroupsPerDimension)
            throw new NotSupportedException($"{tokens} tokens exceed one mat-mat dispatch's workgroup counts");
        bool out4 = push.RowOffset % 4 == 0 && push.OutStride % ((push.Fusion & WeightPush.FuseSwiGlu) != 0 ? 2 : 4) == 0;
        var kernel = MatMulKernel("matmul_", w, tiling.Constants(vec4, out4));
        if (tiling.Split == 1)
        {
            _recorder.Dispatch(kernel, slices, access, push, groupsX, groupsY);
            return;
        }
        var partial = Tensor(ScratchTensor.Ensure(this, ref _matMulPartial, (long)tiling.Split * tokens * (chunk.Rows + 1))).Slice;
        BufferSlice[] splitSlices = [.. slices];
        splitSlices[5] = partial;
        _recorder.Dispatch(kernel, splitSlices, SplitAccess, push, groupsX, groupsY, tiling.Split);
        uint outputs = (push.Fusion & WeightPush.FuseSwiGlu) != 0 ? (uint)chunk.Rows / 2 : (uint)chunk.Rows;
        _recorder.Dispatch(MatMulKernel("matmul_", w, tiling.ReduceConstants(vec4)), splitSlices, ReduceAccess, push,
            (outputs + MatMulTiling.ReduceWorkgroup - 1) / MatMulTiling.ReduceWorkgroup, (uint)tokens);
    }

    public void RmsNorm(ITensor x, ITensor weight, ITensor y, int rows, int dim, float eps) =>
        Norm("rmsnorm", x, weight, null, y, rows, dim, eps);

    public void LayerNorm(ITensor x, ITensor weight, ITensor? bias, ITensor y, int rows, int dim, float eps) =>
        Norm("layernorm", x, weight, bias, y, rows, dim, eps);

    private void Norm(string name, ITensor x, ITensor weight, ITensor? bias, ITensor y, int rows, int dim, float eps)
    {
        var kernel = Kernel(name, 4, (uint)sizeof(NormPush), _reduceWorkgroup);
        var (gx, gy) = Groups((uint)rows);
        var w = Tensor(weight);
        _recorder.Dispatch(kernel, [Tensor(x).Slice, w.Slice, Tensor(y).Slice, bias is null ? Whole(_empty) : Tensor(bias).Slice],
            [Access.Read, Access.Read, Access.Write, Access.Read],
            new NormPush((uint)rows, (uint)dim, eps, (uint)w.Length, bias is null ? 0u : 1u), gx, gy);
    }

    public void Rope(ITensor x, ITensor table, int tokens, int heads, int headDim, int pos0, RopeLayout layout)
    {
        var kernel = Kernel("rope", 2, (uint)sizeof(RopePush));
        var push = new RopePush((uint)tokens, (uint)heads, (uint)headDim, (uint)pos0, layout == RopeLayout.RotateHalf ? 1u : 0u);
        uint threads = (uint)(tokens * heads * (headDim / 2));
        _recorder.Dispatch(kernel, [Tensor(x).Slice, Tensor(table).Slice], [Access.Write, Access.Read], push, (threads + 63) / 64);
    }

    public void RopeKv(ITensor qkv, ITensor table, ITensor q, ITensor keys, ITensor values, int tokens, int heads, int kvHeads, int headDim, int pos0, int ropeShift,
        RopeLayout layout, ITensor? queryNorm, ITensor? keyNorm, float eps)
    {
        var cache = ElementChecks.Cache(keys, values);
        var kernel = Kernel(cache == ElementType.F16 ? "rope_kv_f16" : "rope_kv", 7, (uint)sizeof(RopeKvPush));
        var push = new RopeKvPush((uint)tokens, (uint)heads, (uint)kvHeads, (uint)headDim, (uint)pos0, ropeShift, layout == RopeLayout.RotateHalf ? 1u : 0u,
            queryNorm is null ? 0u : 1u, keyNorm is null ? 0u : 1u, eps);
        _recorder.Dispatch(kernel,
            [Tensor(qkv).Slice, Tensor(table).Slice, Tensor(q).Slice, AnyTensor(keys).Slice, AnyTensor(values).Slice,
             queryNorm is null ? Whole(_empty) : Tensor(queryNorm).Slice, keyNorm is null ? Whole(_empty) : Tensor(keyNorm).Slice],
            [Access.Read, Access.Read, Access.Write, Access.Write, Access.Write, Access.Read, Access.Read], push, (uint)(heads + 2 * kvHeads), (uint)tokens);
    }

    public void Attention(ITensor q, ITensor keys, ITensor values, ITensor output, int tokens, int pos0, int heads, int kvHeads, int headDim, float scale,
        bool causal = true, int window = 0)
    {
        AttentionChecks.Validate(tokens, pos0, heads, kvHeads, headDim, causal, window);
        var cache = ElementChecks.Cache(keys, values);
        if (tokens == 0) return;
        var tuning = AttentionTuning;
        var plan = AttentionPlan.Make(tuning, tokens, pos0, heads, kvHeads, headDim, causal, window);
        var (name, constants) = tuning.Kernel(headDim, cache);
        var kernel = Kernel(name, 5, (uint)sizeof(AttentionPush), constants);
        var push = new AttentionPush((uint)tokens, (uint)pos0, (uint)heads, (uint)kvHeads, (uint)headDim, scale, causal ? 1u : 0u, (uint)window,
            (uint)plan.KeyBase, (uint)plan.SplitLength, (uint)plan.Splits, (uint)plan.BlockRows);
        BufferSlice[] slices = [Tensor(q).Slice, AnyTensor(keys).Slice, AnyTensor(values).Slice, Tensor(output).Slice, Whole(_empty)];
        uint groupsX = (uint)Math.Min(plan.Blocks, MaxGroupsPerDimension);   // the kernels loop over further blocks
        if (plan.Splits == 1)
        {
            _recorder.Dispatch(kernel, slices, AttentionAccess, push, groupsX, (uint)kvHeads);
            return;
        }
        slices[4] = Tensor(ScratchTensor.Ensure(this, ref _attentionPartials, (long)plan.Splits * tokens * heads * (headDim + 4))).Slice;
        _recorder.Dispatch(kernel, slices, AttentionSplitAccess, push, groupsX, (uint)kvHeads, (uint)plan.Splits);
        var (gx, gy) = Groups((uint)(((long)tokens * heads * headDim + 63) / 64));
        _recorder.Dispatch(Kernel("attention_reduce", 5, (uint)sizeof(AttentionPush)), slices, AttentionReduceAccess, push, gx, gy);
    }

    public void SwiGlu(ITensor gate, ITensor up, ITensor output, int count) =>
        Elementwise("swiglu", Tensor(gate).Slice, Tensor(up).Slice, Tensor(output).Slice, new ElementwisePush { Count = (uint)count });

    public void Activate(Activation function, ITensor x, ITensor y, int count) =>
        Elementwise("activate", Tensor(x).Slice, Whole(_empty), Tensor(y).Slice, new ElementwisePush { Count = (uint)count, Function = (uint)function });

    public void Binary(BinaryOp op, ITensor a, ITensor b, ITensor output, int count, int bLength) =>
        Elementwise("binary", Tensor(a).Slice, Tensor(b).Slice, Tensor(output).Slice,
            new ElementwisePush { Count = (uint)count, Function = (uint)op, BLength = (uint)bLength });

    public void CopyRows(ITensor source, int sourceOffset, int sourceStride, ITensor destination, int destinationOffset, int destinationStride, int width, int rows)
    {
        ElementChecks.CopyRows(source, destination, destinationOffset, destinationStride, width);
        var to = AnyTensor(destination);
        bool halves = to.Element == ElementType.F16;   // one invocation per word: a pair of halves
        Elementwise(halves ? "copy_f16" : "copy", Tensor(source).Slice, Whole(_empty), to.Slice, new ElementwisePush
        {
            Count = (uint)(width * rows / (halves ? 2 : 1)), Width = (uint)width,
            SourceOffset = (uint)sourceOffset, SourceStride = (uint)sourceStride,
            DestinationOffset = (uint)destinationOffset, DestinationStride = (uint)destinationStride,
        });
    }

    /// <summary>A transfer-queue copy of a whole tensor (vkCmdCopyBuffer): the device's copy bandwidth, for benchmarks.</summary>
    public void TransferCopy(ITensor source, ITensor destination)
    {
        var (from, to) = (Tensor(source).Slice, Tensor(destination).Slice);
        _recorder.Copy(from.Buffer, from.Offset, to.Buffer, to.Offset, Math.Min(from.Size, to.Size));
    }

    public void RopePositions(ITensor x, ITensor table, ITensor positions, int tokens, int heads, int headDim, int section0, int section1, RopeLayout layout)
    {
        var kernel = Kernel("rope_positions", 3, (uint)sizeof(RopePositionsPush));
        var push = new RopePositionsPush((uint)tokens, (uint)heads, (uint)headDim, 0, layout == RopeLayout.RotateHalf ? 1u : 0u, (uint)section0, (uint)section1);
        uint threads = (uint)(tokens * heads * (headDim / 2));
        _recorder.Dispatch(kernel, [Tensor(x).Slice, Tensor(table).Slice, Tensor(positions).Slice], [Access.Write, Access.Read, Access.Read], push, (threads + 63) / 64);
    }

    public void Softmax(ITensor x, int rows, int cols)
    {
        var kernel = Kernel("softmax", 1, (uint)sizeof(SoftmaxPush), _reduceWorkgroup);
        var (gx, gy) = Groups((uint)rows);
        _recorder.Dispatch(kernel, [Tensor(x).Slice], [Access.Write], new SoftmaxPush((uint)rows, (uint)cols), gx, gy);
    }

    private void Elementwise(string name, BufferSlice a, BufferSlice b, BufferSlice output, ElementwisePush push)
    {
        if (push.Count == 0) return;
        var kernel = Kernel(name, 3, (uint)sizeof(ElementwisePush));
        var (gx, gy) = Groups((push.Count + 255) / 256);
        _recorder.Dispatch(kernel, [a, b, output], [Access.Read, Access.Read, Access.Write], push, gx, gy);
    }

    /// <summary>Rows per mat-vec workgroup for this matrix's format on this device.</summary>
    private uint MatVecRows(VulkanWeightMatrix matrix) => MatVec.RowsFor(matrix.Info.Format.BitsPerWeight(matrix.Parameters));

    /// <summary>A mat-vec pipeline: one per variant and set of specialization constants (MatVecTuning.Constants).</summary>
    private ComputeKernel MatVecKernel(string op, VulkanWeightMatrix matrix, uint[] constants)
    {
        string variant = op + matrix.Info.Format.ShaderTag(matrix.Parameters);
        string key = $"{variant}/{string.Join(',', constants)}";
        if (!_kernels.TryGetValue(key, out var kernel))
        {
            kernel = new ComputeKernel(_context, variant, WeightPush.ProductBindings, (uint)sizeof(WeightPush), constants);
            _kernels[key] = kernel;
        }
        return kernel;
    }
}
