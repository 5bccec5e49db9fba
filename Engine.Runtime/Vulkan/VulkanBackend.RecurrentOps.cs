using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Runtime.Vulkan;

/// <summary>The recurrent modules' dispatches: RWKV's WKV and token shift, Mamba's convolution and scans.</summary>
public sealed unsafe partial class VulkanBackend
{
    public void Wkv4(ITensor decay, ITensor first, ITensor k, ITensor v, ITensor state, ITensor output, int tokens, int channels) =>
        Wkv("wkv4", [decay, first, k, v, state, output], new WkvPush((uint)tokens, (uint)channels, 1), (uint)channels);

    public void Wkv6(ITensor r, ITensor k, ITensor v, ITensor decay, ITensor first, ITensor state, ITensor output, int tokens, int heads, int headSize) =>
        Wkv("wkv6", [r, k, v, decay, first, state, output], new WkvPush((uint)tokens, (uint)heads, (uint)headSize), (uint)(heads * headSize));

    public void Wkv7(ITensor r, ITensor decay, ITensor k, ITensor v, ITensor a, ITensor b, ITensor state, ITensor output, int tokens, int heads, int headSize) =>
        Wkv("wkv7", [r, decay, k, v, a, b, state, output], new WkvPush((uint)tokens, (uint)heads, (uint)headSize), (uint)(heads * headSize));

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
}
