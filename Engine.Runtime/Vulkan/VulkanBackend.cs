using System.Runtime.InteropServices;
using Engine.Formats;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// The product backend: weights uploaded once to device-local memory through a staging buffer, activations
/// sub-allocated from arena blocks, kernels and descriptor sets created once, and every op of a step recorded into
/// one command buffer that is submitted when a result is read.
/// </summary>
public sealed unsafe class VulkanBackend : IBackend
{
    /// <summary>Weights per padded row unit: rows start 16-byte aligned for every format.</summary>
    internal const int RowAlign = 8;

    private const uint MatVecRows = 4;
    private const ulong StagingBytes = 32UL << 20;
    private const ulong ArenaBlockBytes = 256UL << 20;
    private const int MaxTokensPerStep = 1 << 16;
    private const uint MaxGroupsPerDimension = 65535;

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

    public IWeightMatrix UploadMatrix(TensorInfo info, ReadOnlySpan<byte> data)
    {
        var (rows, columns) = MatrixShape.Of(info);
        var traits = WeightTypes.Get(info.Type);
        long expected = traits.ByteCount((long)rows * columns);
        if (data.Length != expected)
            throw new InvalidDataException($"tensor '{info.Name}': {data.Length} bytes given, {expected} expected for {info.ShapeText} {traits.Name}");
        int rowStride = (columns + RowAlign - 1) / RowAlign * RowAlign;
        long sourceRowBytes = traits.ByteCount(columns);
        long rowBytes = traits.ByteCount(rowStride);
        long rowsPerChunk = Math.Min(rows, (long)(_context.MaxBindingRange / (ulong)rowBytes));
        if (rowsPerChunk == 0)
            throw new InvalidDataException($"tensor '{info.Name}': one row of {rowBytes} bytes exceeds the device's storage-buffer range");
        long rowsPerStage = Math.Max(1, (long)StagingBytes / rowBytes);

        var chunks = new List<VulkanWeightMatrix.Chunk>();
        for (int first = 0; first < rows; first += (int)rowsPerChunk)
        {
            int chunkRows = (int)Math.Min(rowsPerChunk, rows - first);
            var buffer = Own(new GpuBuffer(_context, (ulong)(chunkRows * rowBytes), BufferKind.DeviceLocal));
            for (int done = 0; done < chunkRows; done += (int)rowsPerStage)
            {
                int count = (int)Math.Min(rowsPerStage, chunkRows - done);
                var stage = new Span<byte>(_staging.Mapped, (int)(count * rowBytes));
                stage.Clear();
                for (int r = 0; r < count; r++)
                {
                    data.Slice((int)((first + done + r) * sourceRowBytes), (int)sourceRowBytes)
                        .CopyTo(stage.Slice((int)(r * rowBytes)));
                }
                _recorder.Copy(_staging, 0, buffer, (ulong)(done * rowBytes), (ulong)stage.Length);
                _recorder.Submit();
            }
            chunks.Add(new VulkanWeightMatrix.Chunk(buffer, first, chunkRows));
        }
        return new VulkanWeightMatrix(rows, columns, rowStride, info.Type, chunks);
    }

    public ITensor UploadVector(ReadOnlySpan<float> values)
    {
        var tensor = (VulkanTensor)Allocate(values.Length);
        var bytes = MemoryMarshal.AsBytes(values);
        for (int done = 0; done < bytes.Length; done += (int)StagingBytes)
        {
            int count = Math.Min((int)StagingBytes, bytes.Length - done);
            bytes.Slice(done, count).CopyTo(new Span<byte>(_staging.Mapped, count));
            _recorder.Copy(_staging, 0, tensor.Slice.Buffer, tensor.Slice.Offset + (ulong)done, (ulong)count);
            _recorder.Submit();
        }
        return tensor;
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
        var matrix = (VulkanWeightMatrix)table;
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
        var kernel = Kernel("embedding_" + WeightTypes.Get(matrix.Type).ShaderTag, 3, (uint)sizeof(EmbeddingPush));
        foreach (var chunk in matrix.Chunks)
        {
            var push = new EmbeddingPush((uint)tokens.Length, (uint)matrix.Columns, (uint)matrix.RowStride, (uint)chunk.FirstRow, (uint)chunk.Rows);
            _recorder.Dispatch(kernel, [Whole(chunk.Buffer), tokenSlice, o.Slice], [Access.Read, Access.Read, Access.Write], push, (uint)tokens.Length);
        }
    }

    public void Linear(IWeightMatrix weight, ITensor? bias, ITensor x, ITensor y, int tokens)
    {
        var w = (VulkanWeightMatrix)weight;
        var input = Tensor(x);
        var output = Tensor(y);
        var biasSlice = bias is null ? Whole(_empty) : Tensor(bias).Slice;
        string tag = WeightTypes.Get(w.Type).ShaderTag;
        foreach (var chunk in w.Chunks)
        {
            if (tokens == 1)
            {
                var kernel = Kernel("matvec_" + tag, 4, (uint)sizeof(MatVecPush), _reduceWorkgroup, MatVecRows);
                var push = new MatVecPush((uint)chunk.Rows, (uint)w.Columns, (uint)w.RowStride, (uint)chunk.FirstRow, bias is null ? 0u : 1u);
                var (gx, gy) = Groups(((uint)chunk.Rows + MatVecRows - 1) / MatVecRows);
                _recorder.Dispatch(kernel, [Whole(chunk.Buffer), input.Slice, output.Slice, biasSlice], ReadReadWriteRead, push, gx, gy);
            }
            else
            {
                var kernel = Kernel("matmul_" + tag, 4, (uint)sizeof(MatMulPush));
                var push = new MatMulPush((uint)chunk.Rows, (uint)w.Columns, (uint)w.RowStride, (uint)chunk.FirstRow, bias is null ? 0u : 1u, (uint)tokens, (uint)w.Rows);
                _recorder.Dispatch(kernel, [Whole(chunk.Buffer), input.Slice, output.Slice, biasSlice], ReadReadWriteRead, push,
                    (uint)((chunk.Rows + 63) / 64), (uint)((tokens + 63) / 64));
            }
        }
    }

    public void RmsNorm(ITensor x, ITensor weight, ITensor y, int rows, int dim, float eps)
    {
        var kernel = Kernel("rmsnorm", 3, (uint)sizeof(RmsNormPush), _reduceWorkgroup);
        var (gx, gy) = Groups((uint)rows);
        _recorder.Dispatch(kernel, [Tensor(x).Slice, Tensor(weight).Slice, Tensor(y).Slice], [Access.Read, Access.Read, Access.Write],
            new RmsNormPush((uint)rows, (uint)dim, eps), gx, gy);
    }

    public void Rope(ITensor x, ITensor table, int tokens, int heads, int headDim, int pos0, RopeLayout layout)
    {
        var kernel = Kernel("rope", 2, (uint)sizeof(RopePush));
        var push = new RopePush((uint)tokens, (uint)heads, (uint)headDim, (uint)pos0, layout == RopeLayout.RotateHalf ? 1u : 0u);
        uint threads = (uint)(tokens * heads * (headDim / 2));
        _recorder.Dispatch(kernel, [Tensor(x).Slice, Tensor(table).Slice], [Access.Write, Access.Read], push, (threads + 63) / 64);
    }

    public void Attention(ITensor q, ITensor keys, ITensor values, ITensor output, int tokens, int pos0, int heads, int kvHeads, int headDim, float scale)
    {
        if (headDim > 256) throw new NotSupportedException($"head dimension {headDim} is above the attention shader's 256");
        var kernel = Kernel("attention", 4, (uint)sizeof(AttentionPush));
        var push = new AttentionPush((uint)tokens, (uint)pos0, (uint)heads, (uint)kvHeads, (uint)headDim, scale);
        _recorder.Dispatch(kernel, [Tensor(q).Slice, Tensor(keys).Slice, Tensor(values).Slice, Tensor(output).Slice],
            [Access.Read, Access.Read, Access.Read, Access.Write], push, (uint)heads, (uint)tokens);
    }

    public void SwiGlu(ITensor gate, ITensor up, ITensor output, int count) =>
        Elementwise("swiglu", Tensor(gate).Slice, Tensor(up).Slice, Tensor(output).Slice, new ElementwisePush((uint)count, 0, 0));

    public void Add(ITensor a, ITensor b, ITensor output, int count) =>
        Elementwise("add", Tensor(a).Slice, Tensor(b).Slice, Tensor(output).Slice, new ElementwisePush((uint)count, 0, 0));

    public void Copy(ITensor source, int sourceOffset, ITensor destination, int destinationOffset, int count) =>
        Elementwise("copy", Tensor(source).Slice, Whole(_empty), Tensor(destination).Slice,
            new ElementwisePush((uint)count, (uint)sourceOffset, (uint)destinationOffset));

    public void Softmax(ITensor x, int rows, int cols)
    {
        var kernel = Kernel("softmax", 1, (uint)sizeof(SoftmaxPush), _reduceWorkgroup);
        var (gx, gy) = Groups((uint)rows);
        _recorder.Dispatch(kernel, [Tensor(x).Slice], [Access.Write], new SoftmaxPush((uint)rows, (uint)cols), gx, gy);
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

    private static readonly Access[] ReadReadWriteRead = [Access.Read, Access.Read, Access.Write, Access.Read];

    private void Elementwise(string name, BufferSlice a, BufferSlice b, BufferSlice output, ElementwisePush push)
    {
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
    private readonly record struct MatVecPush(uint Rows, uint Cols, uint RowStride, uint RowOffset, uint HasBias);
    private readonly record struct MatMulPush(uint Rows, uint Cols, uint RowStride, uint RowOffset, uint HasBias, uint Tokens, uint OutStride);
    private readonly record struct EmbeddingPush(uint Count, uint Cols, uint RowStride, uint RowStart, uint RowCount);
    private readonly record struct RmsNormPush(uint Rows, uint Dim, float Eps);
    private readonly record struct RopePush(uint Tokens, uint Heads, uint HeadDim, uint Pos0, uint RotateHalf);
    private readonly record struct AttentionPush(uint Tokens, uint Pos0, uint Heads, uint KvHeads, uint HeadDim, float Scale);
    private readonly record struct ElementwisePush(uint Count, uint SrcOffset, uint DstOffset);
    private readonly record struct SoftmaxPush(uint Rows, uint Cols);
}
