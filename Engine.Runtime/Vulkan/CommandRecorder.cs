using Silk.NET.Vulkan;

namespace Engine.Runtime.Vulkan;

/// <summary>How a dispatch uses a bound slice, for hazard tracking.</summary>
internal enum Access
{
    Read,
    Write,
}

/// <summary>
/// Records dispatches into command buffers and submits them as they fill, so the device works on the first part of a
/// step while the host records the rest; the host waits only when a result is needed. A memory barrier is inserted
/// only where a dispatch touches a range an earlier, unbarriered dispatch wrote (or writes one it read), so
/// independent ops run back to back; barriers order work across the command buffers of one queue too.
/// </summary>
internal sealed unsafe class CommandRecorder : IDisposable
{
    private readonly VulkanContext _context;
    private readonly DescriptorCache _descriptors;
    /// <summary>Dispatches in the first command buffer of a step (the device starts early), then in each later one.</summary>
    private const int FirstBatch = 8, LaterBatch = 48;

    private readonly List<(CommandBuffer Commands, Fence Fence)> _buffers = [];
    private int _used;          // buffers submitted since the last wait
    private int _inBuffer;      // dispatches in the buffer being recorded
    private CommandBuffer _commands;
    private readonly List<BufferSlice> _pendingWrites = [];
    private readonly List<BufferSlice> _pendingReads = [];
    private bool _recording;
    private bool _disposed;
    private readonly KernelProfiler? _profiler;

    /// <summary>Dispatches recorded since the last submit (for benchmarks and tests).</summary>
    public int DispatchCount { get; private set; }

    /// <summary>Barriers recorded since the last submit.</summary>
    public int BarrierCount { get; private set; }

    /// <summary>Command buffers submitted since the counters were reset.</summary>
    public int Submissions { get; private set; }

    /// <summary>Times the host waited for the device since the counters were reset: one per step that reads a result.</summary>
    public int HostWaits { get; private set; }

    public CommandRecorder(VulkanContext context, DescriptorCache descriptors)
    {
        _context = context;
        _descriptors = descriptors;
        if (Environment.GetEnvironmentVariable(KernelProfiler.EnvironmentVariable) == "1") _profiler = new KernelProfiler(context);
    }

    public bool IsRecording => _recording;

    public void Dispatch<TPush>(ComputeKernel kernel, ReadOnlySpan<BufferSlice> slices, ReadOnlySpan<Access> access, in TPush push, uint groupsX, uint groupsY = 1, uint groupsZ = 1)
        where TPush : unmanaged
    {
        if (sizeof(TPush) != kernel.PushConstantSize)
            throw new InvalidOperationException($"{kernel.Name}: push constants are {kernel.PushConstantSize} bytes, got {sizeof(TPush)}");
        if (groupsX == 0 || groupsY == 0 || groupsZ == 0) return;
        Begin();
        bool hazard = false;
        for (int i = 0; i < slices.Length && !hazard; i++)
        {
            foreach (var written in _pendingWrites) hazard |= written.Overlaps(slices[i]);
            if (access[i] == Access.Write)
                foreach (var read in _pendingReads) hazard |= read.Overlaps(slices[i]);
        }
        if (hazard) ComputeBarrier();
        for (int i = 0; i < slices.Length; i++)
            (access[i] == Access.Write ? _pendingWrites : _pendingReads).Add(slices[i]);

        var vk = _context.Vk;
        var set = _descriptors.Get(kernel, slices);
        vk.CmdBindPipeline(_commands, PipelineBindPoint.Compute, kernel.Pipeline);
        vk.CmdBindDescriptorSets(_commands, PipelineBindPoint.Compute, kernel.Layout, 0, 1, in set, 0, null);
        fixed (TPush* p = &push)
            vk.CmdPushConstants(_commands, kernel.Layout, ShaderStageFlags.ComputeBit, 0, kernel.PushConstantSize, p);
        vk.CmdDispatch(_commands, groupsX, groupsY, groupsZ);
        _profiler?.AfterDispatch(_commands, kernel.Name);
        DispatchCount++;
        // The profiler times one command buffer per step.
        if (++_inBuffer >= (_used == 0 ? FirstBatch : LaterBatch) && _profiler is null) SubmitBuffer(wait: false);
    }

    /// <summary>Records a copy of a slice into a host-visible buffer, after every earlier dispatch.</summary>
    public void CopyToHost(BufferSlice source, GpuBuffer destination)
    {
        Begin();
        var vk = _context.Vk;
        var before = new MemoryBarrier
        {
            SType = StructureType.MemoryBarrier,
            SrcAccessMask = AccessFlags.ShaderWriteBit | AccessFlags.TransferWriteBit,
            DstAccessMask = AccessFlags.TransferReadBit,
        };
        vk.CmdPipelineBarrier(_commands, PipelineStageFlags.ComputeShaderBit | PipelineStageFlags.TransferBit, PipelineStageFlags.TransferBit, 0, 1, in before, 0, null, 0, null);
        var region = new BufferCopy { SrcOffset = source.Offset, DstOffset = 0, Size = source.Size };
        vk.CmdCopyBuffer(_commands, source.Buffer.Handle, destination.Handle, 1, in region);
        var after = new MemoryBarrier
        {
            SType = StructureType.MemoryBarrier,
            SrcAccessMask = AccessFlags.TransferWriteBit,
            DstAccessMask = AccessFlags.HostReadBit,
        };
        vk.CmdPipelineBarrier(_commands, PipelineStageFlags.TransferBit, PipelineStageFlags.HostBit, 0, 1, in after, 0, null, 0, null);
    }

    /// <summary>Records a buffer-to-buffer copy (uploads), ordered after earlier work and before later dispatches.</summary>
    public void Copy(GpuBuffer source, ulong sourceOffset, GpuBuffer destination, ulong destinationOffset, ulong size)
    {
        Begin();
        var region = new BufferCopy { SrcOffset = sourceOffset, DstOffset = destinationOffset, Size = size };
        _context.Vk.CmdCopyBuffer(_commands, source.Handle, destination.Handle, 1, in region);
        var barrier = new MemoryBarrier
        {
            SType = StructureType.MemoryBarrier,
            SrcAccessMask = AccessFlags.TransferWriteBit,
            DstAccessMask = AccessFlags.ShaderReadBit | AccessFlags.TransferReadBit,
        };
        _context.Vk.CmdPipelineBarrier(_commands, PipelineStageFlags.TransferBit, PipelineStageFlags.ComputeShaderBit | PipelineStageFlags.TransferBit, 0, 1, in barrier, 0, null, 0, null);
    }

    /// <summary>Submits what has been recorded and waits for all of it: the only host-device sync of a step.</summary>
    public void Submit()
    {
        if (_recording) SubmitBuffer(wait: true);
        else WaitAll();
    }

    /// <summary>Ends and submits the buffer being recorded; with <paramref name="wait"/>, waits for every submitted buffer.</summary>
    private void SubmitBuffer(bool wait)
    {
        var vk = _context.Vk;
        VulkanException.Check(vk.EndCommandBuffer(_commands), "vkEndCommandBuffer");
        var commands = _commands;
        var submit = new SubmitInfo { SType = StructureType.SubmitInfo, CommandBufferCount = 1, PCommandBuffers = &commands };
        VulkanException.Check(vk.QueueSubmit(_context.Queue, 1, in submit, _buffers[_used].Fence), "vkQueueSubmit");
        _used++;
        _recording = false;
        Submissions++;
        if (wait) WaitAll();
    }

    private void WaitAll()
    {
        if (_used == 0) return;
        var vk = _context.Vk;
        var fences = stackalloc Fence[_used];
        for (int i = 0; i < _used; i++) fences[i] = _buffers[i].Fence;
        VulkanException.Check(vk.WaitForFences(_context.Device, (uint)_used, fences, true, ulong.MaxValue), "vkWaitForFences");
        VulkanException.Check(vk.ResetFences(_context.Device, (uint)_used, fences), "vkResetFences");
        _profiler?.Collect();
        _used = 0;
        HostWaits++;
        _pendingWrites.Clear();
        _pendingReads.Clear();
    }

    public void ResetCounters()
    {
        DispatchCount = 0;
        BarrierCount = 0;
        Submissions = 0;
        HostWaits = 0;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        var vk = _context.Vk;
        vk.DeviceWaitIdle(_context.Device);
        _profiler?.Dispose();
        foreach (var (commands, fence) in _buffers)
        {
            vk.DestroyFence(_context.Device, fence, null);
            vk.FreeCommandBuffers(_context.Device, _context.CommandPool, 1, in commands);
        }
    }

    /// <summary>Starts the next command buffer (created on first need; its last use has completed).</summary>
    private void Begin()
    {
        if (_recording) return;
        var vk = _context.Vk;
        if (_used == _buffers.Count)
        {
            var allocateInfo = new CommandBufferAllocateInfo
            {
                SType = StructureType.CommandBufferAllocateInfo,
                CommandPool = _context.CommandPool,
                Level = CommandBufferLevel.Primary,
                CommandBufferCount = 1,
            };
            VulkanException.Check(vk.AllocateCommandBuffers(_context.Device, in allocateInfo, out var created), "vkAllocateCommandBuffers");
            var fenceInfo = new FenceCreateInfo { SType = StructureType.FenceCreateInfo };
            VulkanException.Check(vk.CreateFence(_context.Device, in fenceInfo, null, out var fence), "vkCreateFence");
            _buffers.Add((created, fence));
        }
        _commands = _buffers[_used].Commands;
        VulkanException.Check(vk.ResetCommandBuffer(_commands, 0), "vkResetCommandBuffer");
        var beginInfo = new CommandBufferBeginInfo { SType = StructureType.CommandBufferBeginInfo, Flags = CommandBufferUsageFlags.OneTimeSubmitBit };
        VulkanException.Check(vk.BeginCommandBuffer(_commands, in beginInfo), "vkBeginCommandBuffer");
        _recording = true;
        _inBuffer = 0;
        if (_used == 0) _profiler?.Begin(_commands);
    }

    private void ComputeBarrier()
    {
        var barrier = new MemoryBarrier
        {
            SType = StructureType.MemoryBarrier,
            SrcAccessMask = AccessFlags.ShaderWriteBit | AccessFlags.ShaderReadBit,
            DstAccessMask = AccessFlags.ShaderReadBit | AccessFlags.ShaderWriteBit,
        };
        _context.Vk.CmdPipelineBarrier(_commands, PipelineStageFlags.ComputeShaderBit, PipelineStageFlags.ComputeShaderBit, 0, 1, in barrier, 0, null, 0, null);
        _pendingWrites.Clear();
        _pendingReads.Clear();
        BarrierCount++;
    }
}
