using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// The product backend: weights uploaded once to device-local memory through a staging buffer, activations
/// sub-allocated from arena blocks, kernels and descriptor sets created once, and every op of a step recorded into
/// one command buffer that is submitted when a result is read.
/// </summary>
public sealed unsafe class VulkanBackend : IBackend
{
    private const uint MatVecRows = 4;
    private const ulong StagingBytes = 32UL << 20;
    private const ulong ArenaBlockBytes = 256UL << 20;
    private const int MaxTokensPerStep = 1 << 16;
    private const uint MaxGroupsPerDimension = 65535;
    private const long SsdScratchFloats = 1L << 24;   // 64 MiB: within lavapipe's 128 MiB binding range

    private readonly VulkanContext _context;
    private readonly bool _ownsContext;
    private readonly DescriptorCache _descriptors;
    private readonly CommandRecorder _recorder;
    private readonly Dictionary<string, ComputeKernel> _kernels = [];
    private readonly List<GpuBuffer> _buffers = [];
    private readonly GpuBuffer _staging;
    private readonly GpuBuffer _tokens;
    private readonly GpuBuffer _empty;
    private readonly ulong _alignment;
    private readonly uint _reduceWorkgroup;
    private readonly LowRankUploader _lowRank = new();
    private readonly UnfusedProduct _unfused = new();
    private readonly ConditionalWeakTable<ITensorSource, Dictionary<string, VulkanTensor>> _codebooks = new();
    private ITensor? _rotatedInput;
    private ITensor? _rotatedOutput;
    private ITensor? _ssdScratch;
    private ITensor? _matMulPartial;
    private GpuBuffer? _readback;
    private GpuBuffer? _arenaBlock;
    private ulong _arenaUsed;
    private int _tokensUsed;
    private bool _disposed;

    public VulkanBackend(int? deviceIndex = null)
        : this(VulkanContext.Create(deviceIndex), ownsContext: true)
    {
    }

    public VulkanBackend(VulkanContext context, bool ownsContext = false)
    {
        _context = context;
        _ownsContext = ownsContext;
        _alignment = Math.Max(16UL, context.Limits.MinStorageBufferOffsetAlignment);
        // A CPU implementation (lavapipe) runs one subgroup at a time and pays for every barrier, so its reductions use
        // one subgroup per workgroup; GPUs get several warps to hide memory latency.
        _reduceWorkgroup = context.Info.IsCpu ? Math.Clamp(context.Info.SubgroupSize, 4u, 64u) : 64u;
        _descriptors = new DescriptorCache(context);
        _recorder = new CommandRecorder(context, _descriptors);
        _staging = Own(new GpuBuffer(context, StagingBytes, BufferKind.Upload));
        _tokens = Own(new GpuBuffer(context, MaxTokensPerStep * sizeof(int), BufferKind.Upload));
        _empty = Own(new GpuBuffer(context, 16, BufferKind.DeviceLocal));
    }

    public string Name => "vulkan";

    public string DeviceName => _context.Info.Name;

    public VulkanContext Context => _context;

    internal CommandRecorder Recorder => _recorder;

    /// <summary>Descriptor sets created so far: stays flat from the second step on.</summary>
    public int DescriptorSetCount => _descriptors.Count;

    public int RuntimePrecision
    {
        get;
        set => field = RuntimePrecisionRule.Check(value);
    }

    public IWeightMatrix UploadMatrix(TensorInfo info, ReadOnlySpan<byte> data, ITensorSource? shared = null)
    {
        if (info.Type == WeightType.LowRank) return _lowRank.Upload(this, info, data, shared);
        MatrixShape.Of(info);
        MatrixShape.CheckSize(info, data);
        var matrix = UploadStreams(info, data);
        return info.Type == WeightType.Pcdvq ? WithRotation(matrix, PcdvqFormat.Signs(info, data), matrix.Rows, shared) : matrix;
    }

    /// <summary>The format's streams in row chunks, each chunk one device buffer.</summary>
    private VulkanWeightMatrix UploadStreams(TensorInfo info, ReadOnlySpan<byte> data)
    {
        var layout = info.Layout;
        if (layout.StreamCount > WeightPush.MaxStreams)
            throw new NotSupportedException($"tensor '{info.Name}': {info.Format.Name} has {layout.StreamCount} streams, the shaders take {WeightPush.MaxStreams}");
        // A chunk holds, for its rows, every stream's device rows, each stream starting 16-byte aligned.
        long deviceRowBytes = layout.DeviceRowBytes.Sum();
        long maxRange = (long)_context.MaxBindingRange - 16 * layout.StreamCount;
        long rowsPerChunk = Math.Min(layout.Rows, maxRange / deviceRowBytes);
        if (rowsPerChunk <= 0)
            throw new InvalidDataException($"tensor '{info.Name}': one row of {deviceRowBytes} bytes exceeds the device's storage-buffer range");
        if (info.Shape.Length == 3)
        {
            // A stack of experts: chunks hold whole experts, so an expert-indexed product finds an expert in one binding.
            long expertRows = info.Shape[1];
            rowsPerChunk = rowsPerChunk / expertRows * expertRows;
            if (rowsPerChunk <= 0)
                throw new InvalidDataException($"tensor '{info.Name}': one expert of {expertRows} rows exceeds the device's storage-buffer range");
        }

        var chunks = new List<VulkanWeightMatrix.Chunk>();
        for (long first = 0; first < layout.Rows; first += rowsPerChunk)
        {
            int chunkRows = (int)Math.Min(rowsPerChunk, layout.Rows - first);
            var offsets = new uint[layout.StreamCount];
            long size = 0;
            for (int s = 0; s < layout.StreamCount; s++)
            {
                offsets[s] = (uint)(size / 4);
                size = (size + chunkRows * layout.DeviceRowBytes[s] + 15) / 16 * 16;
            }
            var buffer = Own(new GpuBuffer(_context, (ulong)size, BufferKind.DeviceLocal));
            for (int s = 0; s < layout.StreamCount; s++)
                UploadStreamRows(data, layout, s, (int)first, chunkRows, buffer, (long)offsets[s] * 4);
            chunks.Add(new VulkanWeightMatrix.Chunk(buffer, (int)first, chunkRows, offsets));
        }
        return new VulkanWeightMatrix(info, layout, chunks, () => RuntimePrecision);
    }

    /// <summary>
    /// PCDVQ: the codebook (uploaded once per source and name) and the sign vectors of the rotations; a stack of
    /// experts has each expert's signs in turn, its output transform in blocks of one expert's rows.
    /// </summary>
    private VulkanWeightMatrix WithRotation(VulkanWeightMatrix matrix, (float[] Input, float[] Output) signs, int outputLength, ITensorSource? shared)
    {
        var info = matrix.Info;
        string name = info.Parameters.Reference!;
        if (shared is null || !_codebooks.GetOrCreateValue(shared).TryGetValue(name, out var codebook))
        {
            PcdvqFormat.ReadCodebook(info.Parameters, shared);  // validates it, with a clear error when it is missing: once per source
            codebook = (VulkanTensor)UploadVector(MemoryMarshal.Cast<byte, float>(shared!.ReadBytes(name)));
            _codebooks.GetOrCreateValue(shared).Add(name, codebook);
        }
        return new VulkanWeightMatrix(info, matrix.Layout, matrix.Chunks, () => RuntimePrecision)
        {
            Aux = codebook.Slice,
            Rotated = new VulkanWeightMatrix.Rotation(
                (VulkanTensor)UploadVector(signs.Input), Hadamard.BlockSize(matrix.Layout.PaddedColumns),
                (VulkanTensor)UploadVector(signs.Output), Hadamard.BlockSize(outputLength)),
        };
    }

    /// <summary>Copies rows [first, first + count) of one stream into a device buffer, each row zero-padded to its device size.</summary>
    private void UploadStreamRows(ReadOnlySpan<byte> data, MatrixLayout layout, int stream, int first, int count, GpuBuffer buffer, long offset)
    {
        long fileRow = layout.RowBytes[stream];
        long deviceRow = layout.DeviceRowBytes[stream];
        long streamStart = layout.StreamOffset(stream);
        int rowsPerStage = (int)Math.Max(1, (long)StagingBytes / deviceRow);
        for (int done = 0; done < count; done += rowsPerStage)
        {
            int rows = Math.Min(rowsPerStage, count - done);
            var stage = new Span<byte>(_staging.Mapped, (int)(rows * deviceRow));
            if (fileRow == deviceRow)
                data.Slice((int)(streamStart + (first + done) * fileRow), stage.Length).CopyTo(stage);
            else
            {
                stage.Clear();
                for (int r = 0; r < rows; r++)
                    data.Slice((int)(streamStart + (first + done + r) * fileRow), (int)fileRow).CopyTo(stage.Slice((int)(r * deviceRow)));
            }
            _recorder.Copy(_staging, 0, buffer, (ulong)(offset + done * deviceRow), (ulong)stage.Length);
            _recorder.Submit();
        }
    }

    public ITensor UploadVector(ReadOnlySpan<float> values)
    {
        var tensor = Allocate(values.Length);
        Write(tensor, 0, values);
        return tensor;
    }

    public void Write(ITensor destination, int offset, ReadOnlySpan<float> values)
    {
        var tensor = Tensor(destination);
        if (offset < 0 || offset + values.Length > tensor.Length)
            throw new ArgumentException($"writing {values.Length} floats at {offset} into a tensor of {tensor.Length}");
        // The staging buffer is reused chunk by chunk, so each copy is submitted (after the ops recorded before it).
        var bytes = MemoryMarshal.AsBytes(values);
        for (int done = 0; done < bytes.Length; done += (int)StagingBytes)
        {
            int count = Math.Min((int)StagingBytes, bytes.Length - done);
            bytes.Slice(done, count).CopyTo(new Span<byte>(_staging.Mapped, count));
            _recorder.Copy(_staging, 0, tensor.Slice.Buffer, tensor.Slice.Offset + (ulong)offset * sizeof(float) + (ulong)done, (ulong)count);
            Flush();
        }
    }

    public ITensor Allocate(int length)
    {
        if (length <= 0) throw new ArgumentOutOfRangeException(nameof(length), "a tensor needs at least one element");
        ulong size = (ulong)length * sizeof(float);
        if (size > _context.MaxBindingRange)
            throw new VulkanException($"a {size >> 20} MiB activation exceeds the device's storage-buffer range ({_context.MaxBindingRange >> 20} MiB)");
        ulong blockSize = Math.Min(ArenaBlockBytes, _context.MaxBindingRange);
        if (size > blockSize / 4)
            return new VulkanTensor(new BufferSlice(Own(new GpuBuffer(_context, size, BufferKind.DeviceLocal)), 0, size), length);
        if (_arenaBlock is null || _arenaUsed + size > _arenaBlock.Size)
        {
            _arenaBlock = Own(new GpuBuffer(_context, blockSize, BufferKind.DeviceLocal));
            _arenaUsed = 0;
        }
        var slice = new BufferSlice(_arenaBlock, _arenaUsed, size);
        _arenaUsed = (_arenaUsed + size + _alignment - 1) / _alignment * _alignment;
        return new VulkanTensor(slice, length);
    }

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
        var matVec = tokens == 1 ? WeightKernel("matvec_", w, WeightPush.ProductBindings, [_reduceWorkgroup, MatVecRows]) : null;
        foreach (var chunk in w.Chunks)
        {
            var push = WeightPush.For(w, chunk, bias is not null, tokens, fusion.Outputs(w.Rows), inputColumns);
            push.Fusion = (fusion.Norm is null ? 0 : WeightPush.FuseNorm) | (fusion.SwiGlu ? WeightPush.FuseSwiGlu : 0)
                | (fusion.Accumulate ? WeightPush.FuseAccumulate : 0);
            push.NormEps = fusion.NormEps;
            BufferSlice[] slices = [Whole(chunk.Buffer), input.Slice, output.Slice, biasSlice, aux, Whole(_empty), norm];
            var access = fusion.Accumulate ? AccumulateAccess : LinearAccess;
            if (matVec is not null)
            {
                var (gx, gy) = Groups(((uint)chunk.Rows + MatVecRows - 1) / MatVecRows);
                _recorder.Dispatch(matVec, slices, access, push, gx, gy);
            }
            else
            {
                MatMul(w, chunk, push, slices, access, tokens);
            }
        }
    }

    /// <summary>Tests: forces the mat-mat tiling of every product (null: chosen per device and shape, <see cref="MatMulTiling.Choose"/>).</summary>
    internal MatMulTiling? MatMulTilingOverride { get; set; }

    private MatMulTiling ChooseMatMul(int rows, int columns, int tokens, bool experts)
    {
        var tiling = MatMulTilingOverride ?? MatMulTiling.Choose(_context.Info, rows, columns, tokens, experts);
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

    // Split-k: the column ranges write partial sums (binding 5) and leave y alone; the reduction reads them and writes y.
    private static readonly Access[] SplitAccess = [Access.Read, Access.Read, Access.Read, Access.Read, Access.Read, Access.Write, Access.Read];
    private static readonly Access[] ReduceAccess = [Access.Read, Access.Read, Access.Write, Access.Read, Access.Read, Access.Read, Access.Read];

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
        var kernel = Kernel("rope_kv", 7, (uint)sizeof(RopeKvPush));
        var push = new RopeKvPush((uint)tokens, (uint)heads, (uint)kvHeads, (uint)headDim, (uint)pos0, ropeShift, layout == RopeLayout.RotateHalf ? 1u : 0u,
            queryNorm is null ? 0u : 1u, keyNorm is null ? 0u : 1u, eps);
        _recorder.Dispatch(kernel,
            [Tensor(qkv).Slice, Tensor(table).Slice, Tensor(q).Slice, Tensor(keys).Slice, Tensor(values).Slice,
             queryNorm is null ? Whole(_empty) : Tensor(queryNorm).Slice, keyNorm is null ? Whole(_empty) : Tensor(keyNorm).Slice],
            [Access.Read, Access.Read, Access.Write, Access.Write, Access.Write, Access.Read, Access.Read], push, (uint)(heads + 2 * kvHeads), (uint)tokens);
    }

    public void Attention(ITensor q, ITensor keys, ITensor values, ITensor output, int tokens, int pos0, int heads, int kvHeads, int headDim, float scale, bool causal = true)
    {
        if (headDim > 256) throw new NotSupportedException($"head dimension {headDim} is above the attention shader's 256");
        var kernel = Kernel("attention", 4, (uint)sizeof(AttentionPush));
        var push = new AttentionPush((uint)tokens, (uint)pos0, (uint)heads, (uint)kvHeads, (uint)headDim, scale, causal ? 1u : 0u);
        _recorder.Dispatch(kernel, [Tensor(q).Slice, Tensor(keys).Slice, Tensor(values).Slice, Tensor(output).Slice],
            [Access.Read, Access.Read, Access.Read, Access.Write], push, (uint)heads, (uint)tokens);
    }

    public void SwiGlu(ITensor gate, ITensor up, ITensor output, int count) =>
        Elementwise("swiglu", Tensor(gate).Slice, Tensor(up).Slice, Tensor(output).Slice, new ElementwisePush { Count = (uint)count });

    public void Activate(Activation function, ITensor x, ITensor y, int count) =>
        Elementwise("activate", Tensor(x).Slice, Whole(_empty), Tensor(y).Slice, new ElementwisePush { Count = (uint)count, Function = (uint)function });

    public void Binary(BinaryOp op, ITensor a, ITensor b, ITensor output, int count, int bLength) =>
        Elementwise("binary", Tensor(a).Slice, Tensor(b).Slice, Tensor(output).Slice,
            new ElementwisePush { Count = (uint)count, Function = (uint)op, BLength = (uint)bLength });

    public void CopyRows(ITensor source, int sourceOffset, int sourceStride, ITensor destination, int destinationOffset, int destinationStride, int width, int rows) =>
        Elementwise("copy", Tensor(source).Slice, Whole(_empty), Tensor(destination).Slice, new ElementwisePush
        {
            Count = (uint)(width * rows), Width = (uint)width,
            SourceOffset = (uint)sourceOffset, SourceStride = (uint)sourceStride,
            DestinationOffset = (uint)destinationOffset, DestinationStride = (uint)destinationStride,
        });

    /// <summary>A transfer-queue copy of a whole tensor (vkCmdCopyBuffer): the device's copy bandwidth, for benchmarks.</summary>
    public void TransferCopy(ITensor source, ITensor destination)
    {
        var (from, to) = (Tensor(source).Slice, Tensor(destination).Slice);
        _recorder.Copy(from.Buffer, from.Offset, to.Buffer, to.Offset, Math.Min(from.Size, to.Size));
    }

    public void Wkv4(ITensor decay, ITensor first, ITensor k, ITensor v, ITensor state, ITensor output, int tokens, int channels) =>
        Wkv("wkv4", [decay, first, k, v, state, output], new WkvPush((uint)tokens, (uint)channels, 1), (uint)channels);

    public void Wkv6(ITensor r, ITensor k, ITensor v, ITensor decay, ITensor first, ITensor state, ITensor output, int tokens, int heads, int headSize) =>
        Wkv("wkv6", [r, k, v, decay, first, state, output], new WkvPush((uint)tokens, (uint)heads, (uint)headSize), (uint)(heads * headSize));

    public void Wkv7(ITensor r, ITensor decay, ITensor k, ITensor v, ITensor a, ITensor b, ITensor state, ITensor output, int tokens, int heads, int headSize) =>
        Wkv("wkv7", [r, decay, k, v, a, b, state, output], new WkvPush((uint)tokens, (uint)heads, (uint)headSize), (uint)(heads * headSize));

    /// <summary>The WKV shader keeps a head's state slice in registers, of at most this many floats.</summary>
    private const uint MaxWkvHeadSize = 128;

    /// <summary>One WKV dispatch: the state (second-last binding) is read and written, the output (last) written.</summary>
    private void Wkv(string name, ITensor[] tensors, WkvPush push, uint threads)
    {
        if (push.HeadSize > MaxWkvHeadSize)
            throw new NotSupportedException($"RWKV head size {push.HeadSize} is above the WKV shader's {MaxWkvHeadSize}");
        var access = new Access[tensors.Length];
        Array.Fill(access, Access.Read);
        access[^2] = Access.Write;
        access[^1] = Access.Write;
        var kernel = Kernel(name, tensors.Length, (uint)sizeof(WkvPush));
        _recorder.Dispatch(kernel, tensors.Select(t => Tensor(t).Slice).ToArray(), access, push, (threads + 63) / 64);
    }

    public void CausalConv1d(RowView x, ITensor weight, ITensor? bias, ITensor state, ITensor y, int tokens, int channels, int kernel)
    {
        if (kernel < 2) throw new ArgumentOutOfRangeException(nameof(kernel), kernel, "a causal convolution with carried state needs a kernel of at least 2");
        var kernelObject = Kernel("conv1d", 5, (uint)sizeof(Conv1dPush));
        var push = new Conv1dPush((uint)tokens, (uint)channels, (uint)kernel, (uint)x.Offset, (uint)x.Stride, bias is null ? 0u : 1u);
        var (gx, gy) = Groups(((uint)channels + 63) / 64);
        _recorder.Dispatch(kernelObject, [Tensor(x.Tensor).Slice, Tensor(weight).Slice, bias is null ? Whole(_empty) : Tensor(bias).Slice, Tensor(state).Slice, Tensor(y).Slice],
            [Access.Read, Access.Read, Access.Read, Access.Write, Access.Write], push, gx, gy);
    }

    public void SelectiveScan(SsmInputs inputs, ITensor state, ITensor y, int tokens)
    {
        inputs.Validate();
        // As the shader splits a workgroup: a power-of-two segment of invocations per channel.
        uint lanes = Math.Min(_reduceWorkgroup, BitOperations.RoundUpToPowerOf2((uint)inputs.StateSize));
        uint channelsPerGroup = _reduceWorkgroup / lanes;
        Scan("selective_scan", inputs, state, Tensor(y), 0, tokens, 0, Whole(_empty), Access.Read,
            Groups(((uint)inputs.Channels + channelsPerGroup - 1) / channelsPerGroup));
    }

    public void SsdScan(SsmInputs inputs, ITensor state, ITensor y, int tokens, int chunkSize)
    {
        // The shaders keep a chunk's decays and a channel's state in shared memory of these sizes.
        const int maxChunk = 256, maxState = 256;
        inputs.Validate();
        if (!inputs.ScalarDecay) throw new ArgumentException("the chunked scan needs one decay rate per head");
        if (chunkSize <= 0 || chunkSize > maxChunk || inputs.StateSize > maxState)
            throw new NotSupportedException($"chunk size {chunkSize} and state size {inputs.StateSize}: the chunked scan shader takes 1..{maxChunk} and up to {maxState}");
        // A piece's scores fill one scratch tensor; a longer call runs piece after piece, the state carrying over.
        long perToken = (long)inputs.Heads * (chunkSize + 2);
        int piece = (int)Math.Max(1, SsdScratchFloats / perToken / chunkSize) * chunkSize;
        for (int start = 0; start < tokens; start += piece)
        {
            int count = Math.Min(piece, tokens - start);
            var scratch = Tensor(ScratchTensor.Ensure(this, ref _ssdScratch, perToken * count)).Slice;
            var part = inputs.From(start);
            var output = Tensor(y);
            Scan("ssd_scores", part, state, output, start * inputs.Channels, count, chunkSize, scratch, Access.Write,
                ((uint)((count + chunkSize - 1) / chunkSize), (uint)inputs.Heads));
            Scan("ssd_scan", part, state, output, start * inputs.Channels, count, chunkSize, scratch, Access.Read, Groups((uint)inputs.Channels));
        }
    }

    /// <summary>The scan variants share bindings (inputs, state, output, scratch) and push constants.</summary>
    private void Scan(string name, SsmInputs s, ITensor state, VulkanTensor y, int yOffset, int tokens, int chunkSize, BufferSlice scratch, Access scratchAccess, (uint X, uint Y) groups)
    {
        var kernel = Kernel(name, 11, (uint)sizeof(ScanPush), _reduceWorkgroup);
        var push = new ScanPush
        {
            Tokens = (uint)tokens, Heads = (uint)s.Heads, HeadDim = (uint)s.HeadDim, StateSize = (uint)s.StateSize, Groups = (uint)s.Groups,
            XOffset = (uint)s.X.Offset, XStride = (uint)s.X.Stride, DtOffset = (uint)s.Dt.Offset, DtStride = (uint)s.Dt.Stride,
            BOffset = (uint)s.B.Offset, BStride = (uint)s.B.Stride, COffset = (uint)s.C.Offset, CStride = (uint)s.C.Stride,
            ZOffset = (uint)s.Z.Offset, ZStride = (uint)s.Z.Stride, ScalarDecay = s.ScalarDecay ? 1u : 0u,
            DtMin = s.DtMin, DtMax = s.DtMax, Chunk = (uint)chunkSize, YOffset = (uint)yOffset,
        };
        _recorder.Dispatch(kernel,
            [Tensor(s.X.Tensor).Slice, Tensor(s.Dt.Tensor).Slice, Tensor(s.B.Tensor).Slice, Tensor(s.C.Tensor).Slice, Tensor(s.Z.Tensor).Slice,
             Tensor(s.DtBias).Slice, Tensor(s.A).Slice, Tensor(s.D).Slice, Tensor(state).Slice, y.Slice, scratch],
            [Access.Read, Access.Read, Access.Read, Access.Read, Access.Read, Access.Read, Access.Read, Access.Read, Access.Write, Access.Write, scratchAccess],
            push, groups.X, groups.Y);
    }

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
        if (expertCount > MaxGroupsPerDimension || k > MaxGroupsPerDimension || (expertRows + MatVecRows - 1) / MatVecRows > MaxGroupsPerDimension)
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
    /// The expert-indexed product: one token (decode) is a mat-vec per routing slot; a batch is a tiled product per
    /// expert over the slots the routing grouped under it. Both read the choices on the device.
    /// </summary>
    private void ExpertProduct(VulkanWeightMatrix w, int expertRows, VulkanTensor routing, VulkanTensor input, int inputColumns, VulkanTensor output, int tokens, int k, int divisor)
    {
        var tiling = tokens == 1 ? default : ChooseMatMul(expertRows, inputColumns, tokens, experts: true);
        var kernel = tokens == 1 ? WeightKernel("matvec_experts_", w, WeightPush.ProductBindings, [_reduceWorkgroup, MatVecRows])
            : MatMulKernel("matmul_experts_", w, tiling.Constants(inputColumns % 4 == 0, expertRows % 4 == 0));
        BufferSlice[] slices = [default, input.Slice, output.Slice, Whole(_empty), w.Aux ?? Whole(_empty), routing.Slice, Whole(_empty)];
        foreach (var chunk in w.Chunks)
        {
            slices[0] = Whole(chunk.Buffer);
            var push = WeightPush.For(w, chunk, hasBias: false, tokens: divisor, outStride: 0, inputColumns);
            push.ExpertRows = (uint)expertRows;
            if (tokens == 1)
                _recorder.Dispatch(kernel, slices, ExpertAccess, push, ((uint)expertRows + MatVecRows - 1) / MatVecRows, (uint)k);
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

    /// <summary>
    /// One dispatch: an invocation per channel and chunk of 16 tokens (workgroup layers z), the chunk of token 0
    /// reading the channel's carried row and then alone writing its new value. Bindings: x, mixes, state, token mixes
    /// (the mixes when absent), outputs 0..5 (unused slots bind output 0 again and are never touched).
    /// </summary>
    public void TokenShiftMix(ITensor x, ITensor state, ITensor mixes, ITensor? tokenMixes, ReadOnlySpan<ITensor> outputs, int tokens, int dim, bool updateState)
    {
        const int maxOutputs = 6;
        if (outputs.Length is < 1 or > maxOutputs) throw new ArgumentException($"token shift takes 1 to {maxOutputs} outputs, got {outputs.Length}", nameof(outputs));
        if (tokens <= 0 || dim <= 0) return;
        var slices = new BufferSlice[4 + maxOutputs];
        var access = new Access[slices.Length];
        slices[0] = Tensor(x).Slice;
        slices[1] = Tensor(mixes).Slice;
        slices[2] = Tensor(state).Slice;
        slices[3] = Tensor(tokenMixes ?? mixes).Slice;
        access[2] = updateState ? Access.Write : Access.Read;
        for (int i = 0; i < maxOutputs; i++)
        {
            slices[4 + i] = Tensor(outputs[i < outputs.Length ? i : 0]).Slice;
            access[4 + i] = Access.Write;
        }
        var kernel = Kernel("token_shift", slices.Length, (uint)sizeof(ElementwisePush));
        // elementwise.comp's block, as OP_TOKEN_SHIFT reads it: count = dim, function = flags, bLength = outputs, width = tokens.
        var push = new ElementwisePush
        {
            Count = (uint)dim, Function = (updateState ? 1u : 0u) | (tokenMixes is null ? 0u : 2u), BLength = (uint)outputs.Length, Width = (uint)tokens,
        };
        const int tokenChunk = 16;   // TOKEN_CHUNK of elementwise.comp
        var (gx, gy) = Groups(((uint)dim + 255) / 256);
        _recorder.Dispatch(kernel, slices, access, push, gx, gy, (uint)((tokens + tokenChunk - 1) / tokenChunk));
    }

    public void Read(ITensor tensor, Span<float> destination)
    {
        var source = Tensor(tensor);
        if (destination.Length > source.Length)
            throw new ArgumentException($"reading {destination.Length} floats from a tensor of {source.Length}");
        ulong size = (ulong)destination.Length * sizeof(float);
        if (_readback is null || _readback.Size < size)
        {
            _recorder.Submit();
            _readback?.Dispose();
            _buffers.Remove(_readback!);
            _readback = Own(new GpuBuffer(_context, Math.Max(size, 1UL << 20), BufferKind.Readback));
        }
        _recorder.CopyToHost(source.Slice with { Size = size }, _readback);
        Flush();
        _readback.Invalidate();
        new ReadOnlySpan<float>(_readback.Mapped, destination.Length).CopyTo(destination);
    }

    /// <summary>Submits what has been recorded and waits for it.</summary>
    public void Flush()
    {
        _recorder.Submit();
        _tokensUsed = 0;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _recorder.Dispose();
        _descriptors.Dispose();
        foreach (var kernel in _kernels.Values) kernel.Dispose();
        foreach (var buffer in _buffers) buffer.Dispose();
        if (_ownsContext) _context.Dispose();
    }

    private static readonly Access[] LinearAccess = [Access.Read, Access.Read, Access.Write, Access.Read, Access.Read, Access.Read, Access.Read];
    private static readonly Access[] AccumulateAccess = [Access.Read, Access.Read, Access.Write, Access.Read, Access.Read, Access.Read, Access.Read];
    private static readonly Access[] ExpertAccess = [Access.Read, Access.Read, Access.Write, Access.Read, Access.Read, Access.Read, Access.Read];
    private static readonly Access[] EmbeddingAccess = [Access.Read, Access.Read, Access.Write, Access.Read, Access.Read];

    /// <summary>The kernel of a weight op for the matrix's format: every weight op has bindings 0..4 and <see cref="WeightPush"/>.</summary>
    private ComputeKernel WeightKernel(string op, VulkanWeightMatrix matrix, params uint[] constants) =>
        WeightKernel(op, matrix, WeightPush.Bindings, constants);

    private ComputeKernel WeightKernel(string op, VulkanWeightMatrix matrix, int bindings, uint[] constants) =>
        Kernel(op + matrix.Info.Format.ShaderTag(matrix.Parameters), bindings, (uint)sizeof(WeightPush), constants);

    private void Elementwise(string name, BufferSlice a, BufferSlice b, BufferSlice output, ElementwisePush push)
    {
        if (push.Count == 0) return;
        var kernel = Kernel(name, 3, (uint)sizeof(ElementwisePush));
        var (gx, gy) = Groups((push.Count + 255) / 256);
        _recorder.Dispatch(kernel, [a, b, output], [Access.Read, Access.Read, Access.Write], push, gx, gy);
    }

    private ComputeKernel Kernel(string name, int bindings, uint pushSize, params uint[] constants)
    {
        if (!_kernels.TryGetValue(name, out var kernel))
        {
            kernel = new ComputeKernel(_context, name, bindings, pushSize, constants);
            _kernels[name] = kernel;
        }
        return kernel;
    }

    /// <summary>Spreads a group count over two dimensions: one dimension holds at most 65,535 groups.</summary>
    private static (uint X, uint Y) Groups(uint count) =>
        count <= MaxGroupsPerDimension ? (count, 1u) : (MaxGroupsPerDimension, (count + MaxGroupsPerDimension - 1) / MaxGroupsPerDimension);

    private GpuBuffer Own(GpuBuffer buffer)
    {
        _buffers.Add(buffer);
        return buffer;
    }

    private static BufferSlice Whole(GpuBuffer buffer) => new(buffer, 0, buffer.Size);

    private static VulkanTensor Tensor(ITensor tensor) =>
        tensor as VulkanTensor ?? throw new ArgumentException("the tensor belongs to another backend");

    // Push-constant blocks: field order and types mirror the `Push` block of each shader.
    private readonly record struct NormPush(uint Rows, uint Dim, float Eps, uint WeightLength, uint HasBias);
    private readonly record struct RopePush(uint Tokens, uint Heads, uint HeadDim, uint Pos0, uint RotateHalf);
    private readonly record struct RopeKvPush(uint Tokens, uint Heads, uint KvHeads, uint HeadDim, uint Pos0, int RopeShift, uint RotateHalf, uint HasQueryNorm, uint HasKeyNorm, float Eps);
    private readonly record struct AttentionPush(uint Tokens, uint Pos0, uint Heads, uint KvHeads, uint HeadDim, float Scale, uint Causal);

    private readonly record struct ElementwisePush
    {
        public uint Count { get; init; }
        public uint Function { get; init; }
        public uint BLength { get; init; }
        public uint Width { get; init; }
        public uint SourceOffset { get; init; }
        public uint SourceStride { get; init; }
        public uint DestinationOffset { get; init; }
        public uint DestinationStride { get; init; }
    }
    private readonly record struct Conv1dPush(uint Tokens, uint Channels, uint Kernel, uint XOffset, uint XStride, uint HasBias);

    private readonly record struct ScanPush
    {
        public uint Tokens { get; init; }
        public uint Heads { get; init; }
        public uint HeadDim { get; init; }
        public uint StateSize { get; init; }
        public uint Groups { get; init; }
        public uint XOffset { get; init; }
        public uint XStride { get; init; }
        public uint DtOffset { get; init; }
        public uint DtStride { get; init; }
        public uint BOffset { get; init; }
        public uint BStride { get; init; }
        public uint COffset { get; init; }
        public uint CStride { get; init; }
        public uint ZOffset { get; init; }
        public uint ZStride { get; init; }
        public uint ScalarDecay { get; init; }
        public float DtMin { get; init; }
        public float DtMax { get; init; }
        public uint Chunk { get; init; }
        public uint YOffset { get; init; }
    }
    private readonly record struct WkvPush(uint Tokens, uint Heads, uint HeadSize);
    private readonly record struct MoeRoutePush(uint Tokens, uint Experts, uint K, uint Normalize, float Scale);
    private readonly record struct MoeCombinePush(uint Tokens, uint K, uint Dim, uint HasShared, uint HasSharedScale, uint Accumulate);
    private readonly record struct RopePositionsPush(uint Tokens, uint Heads, uint HeadDim, uint Pos0, uint RotateHalf, uint Section0, uint Section1);
    private readonly record struct SoftmaxPush(uint Rows, uint Cols);
    private readonly record struct HadamardPush(uint RowLength, uint SourceLength, uint Block, uint OutputSide, uint HasBias, uint Divisor);
    /// <summary>elementwise.comp's Push block as OP_TOKEN_SHIFT reads it: count = dim, function = flags (1 update the state, 2 token mixes), bLength = outputs, width = tokens.</summary>
}
