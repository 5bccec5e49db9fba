using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// The product backend: weights uploaded once to device-local memory through a staging buffer, activations
/// sub-allocated from arena blocks, kernels and descriptor sets created once, and the ops of a step recorded into
/// command buffers submitted as they fill, with one wait when a result is read. This file holds device memory and
/// the kernel cache; the ops are in VulkanBackend.CoreOps.cs, .RecurrentOps.cs and .MoeOps.cs (one per interface).
/// </summary>
public sealed unsafe partial class VulkanBackend : IBackend
{
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
    private MatVecTuning? _matVec;
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

    /// <summary>How this device runs the mat-vec (MatVecTuning.For, on first use); tests set it to reach other variants.</summary>
    internal MatVecTuning MatVec
    {
        get => _matVec ??= MatVecTuning.For(_context);
        set => _matVec = value;
    }

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
        var tensor = AnyTensor(destination);
        if (offset < 0 || offset + values.Length > tensor.Length)
            throw new ArgumentException($"writing {values.Length} floats at {offset} into a tensor of {tensor.Length}");
        // An f16 tensor gets its halves rounded on the host ((Half)x: to nearest, ties to even, as the shaders round);
        // a copy moves bytes at any offset, so a write may start or end inside a word.
        var bytes = tensor.Element == ElementType.F16 ? MemoryMarshal.AsBytes<Half>(ToHalves(values)) : MemoryMarshal.AsBytes(values);
        // The staging buffer is reused chunk by chunk, so each copy is submitted (after the ops recorded before it).
        for (int done = 0; done < bytes.Length; done += (int)StagingBytes)
        {
            int count = Math.Min((int)StagingBytes, bytes.Length - done);
            bytes.Slice(done, count).CopyTo(new Span<byte>(_staging.Mapped, count));
            _recorder.Copy(_staging, 0, tensor.Slice.Buffer, tensor.Slice.Offset + (ulong)offset * (ulong)tensor.ElementBytes + (ulong)done, (ulong)count);
            Flush();
        }
    }

    private static Half[] ToHalves(ReadOnlySpan<float> values)
    {
        var halves = new Half[values.Length];
        for (int i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
        return halves;
    }

    public ITensor Allocate(int length, ElementType element = ElementType.F32)
    {
        if (length <= 0) throw new ArgumentOutOfRangeException(nameof(length), "a tensor needs at least one element");
        // Whole 32-bit words: the shaders read and write an f16 tensor's halves in pairs.
        ulong size = element == ElementType.F16 ? ((ulong)length + 1) / 2 * sizeof(uint) : (ulong)length * sizeof(float);
        if (size > _context.MaxBindingRange)
            throw new VulkanException($"a {size >> 20} MiB activation exceeds the device's storage-buffer range ({_context.MaxBindingRange >> 20} MiB)");
        ulong blockSize = Math.Min(ArenaBlockBytes, _context.MaxBindingRange);
        if (size > blockSize / 4)
            return new VulkanTensor(new BufferSlice(Own(new GpuBuffer(_context, size, BufferKind.DeviceLocal)), 0, size), length, element);
        if (_arenaBlock is null || _arenaUsed + size > _arenaBlock.Size)
        {
            _arenaBlock = Own(new GpuBuffer(_context, blockSize, BufferKind.DeviceLocal));
            _arenaUsed = 0;
        }
        var slice = new BufferSlice(_arenaBlock, _arenaUsed, size);
        _arenaUsed = (_arenaUsed + size + _alignment - 1) / _alignment * _alignment;
        return new VulkanTensor(slice, length, element);
    }

    /// <summary>Tests: forces the mat-mat tiling of every product (null: chosen per device and shape, <see cref="MatMulTiling.Choose"/>).</summary>
    internal MatMulTiling? MatMulTilingOverride { get; set; }

    // Split-k: the column ranges write partial sums (binding 5) and leave y alone; the reduction reads them and writes y.
    private static readonly Access[] SplitAccess = [Access.Read, Access.Read, Access.Read, Access.Read, Access.Read, Access.Write, Access.Read];
    private static readonly Access[] ReduceAccess = [Access.Read, Access.Read, Access.Write, Access.Read, Access.Read, Access.Read, Access.Read];

    /// <summary>How attention runs on this device (kernel, block sizes, split-k); tests set it before the first attention call.</summary>
    internal AttentionTuning AttentionTuning
    {
        get => _attentionTuning ??= AttentionTuning.For(_context);
        set => _attentionTuning = value;
    }

    private AttentionTuning? _attentionTuning;
    private ITensor? _attentionPartials;   // split-k: per split, kv head and row, the unnormalised output, maximum and sum
    private static readonly Access[] AttentionAccess = [Access.Read, Access.Read, Access.Read, Access.Write, Access.Read];
    private static readonly Access[] AttentionSplitAccess = [Access.Read, Access.Read, Access.Read, Access.Read, Access.Write];
    private static readonly Access[] AttentionReduceAccess = [Access.Read, Access.Read, Access.Read, Access.Write, Access.Read];

    /// <summary>The WKV shader keeps a head's state slice in registers, of at most this many floats.</summary>
    private const uint MaxWkvHeadSize = 128;

    public void Read(ITensor tensor, Span<float> destination)
    {
        var source = AnyTensor(tensor);
        if (destination.Length > source.Length)
            throw new ArgumentException($"reading {destination.Length} floats from a tensor of {source.Length}");
        ulong size = (ulong)destination.Length * (ulong)source.ElementBytes;
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
        if (source.Element == ElementType.F32)
            new ReadOnlySpan<float>(_readback.Mapped, destination.Length).CopyTo(destination);
        else
        {
            var halves = new ReadOnlySpan<Half>(_readback.Mapped, destination.Length);
            for (int i = 0; i < halves.Length; i++) destination[i] = (float)halves[i];
        }
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

    /// <summary>A float32 tensor of this backend (the ops that take f16 tensors as well use <see cref="AnyTensor"/>).</summary>
    private static VulkanTensor Tensor(ITensor tensor)
    {
        ElementChecks.F32(tensor);
        return AnyTensor(tensor);
    }

    private static VulkanTensor AnyTensor(ITensor tensor) =>
        tensor as VulkanTensor ?? throw new ArgumentException("the tensor belongs to another backend");

    // Push-constant blocks: field order and types mirror the `Push` block of each shader.
    private readonly record struct NormPush(uint Rows, uint Dim, float Eps, uint WeightLength, uint HasBias);
    private readonly record struct RopePush(uint Tokens, uint Heads, uint HeadDim, uint Pos0, uint RotateHalf);
    private readonly record struct RopeKvPush(uint Tokens, uint Heads, uint KvHeads, uint HeadDim, uint Pos0, int RopeShift, uint RotateHalf, uint HasQueryNorm, uint HasKeyNorm, float Eps);
    private readonly record struct AttentionPush(uint Tokens, uint Pos0, uint Heads, uint KvHeads, uint HeadDim, float Scale, uint Causal, uint Window,
        uint KeyBase, uint SplitLength, uint Splits, uint RowsPerBlock);

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
