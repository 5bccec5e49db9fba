using Silk.NET.Vulkan;
using Buffer = Silk.NET.Vulkan.Buffer;

namespace Engine.Runtime.Vulkan;

internal enum BufferKind
{
    /// <summary>Weights, activations, caches: fastest memory for the shaders.</summary>
    DeviceLocal,

    /// <summary>Host-written, device-read (staging uploads, token ids); mapped for its whole life.</summary>
    Upload,

    /// <summary>Device-written, host-read (results); mapped for its whole life.</summary>
    Readback,
}

/// <summary>One VkBuffer with its own memory allocation.</summary>
internal sealed unsafe class GpuBuffer : IDisposable
{
    private readonly VulkanContext _context;
    private bool _disposed;

    public Buffer Handle { get; }
    public DeviceMemory Memory { get; }
    public ulong Size { get; }
    public BufferKind Kind { get; }

    /// <summary>Host address of the buffer for Upload and Readback buffers; null for device-local ones.</summary>
    public byte* Mapped { get; }

    private readonly bool _coherent;

    public GpuBuffer(VulkanContext context, ulong size, BufferKind kind)
    {
        _context = context;
        Size = size;
        Kind = kind;
        var vk = context.Vk;
        var info = new BufferCreateInfo
        {
            SType = StructureType.BufferCreateInfo,
            Size = size,
            Usage = BufferUsageFlags.StorageBufferBit | BufferUsageFlags.TransferSrcBit | BufferUsageFlags.TransferDstBit,
            SharingMode = SharingMode.Exclusive,
        };
        VulkanException.Check(vk.CreateBuffer(context.Device, in info, null, out var buffer), "vkCreateBuffer");
        Handle = buffer;
        vk.GetBufferMemoryRequirements(context.Device, buffer, out var requirements);
        uint? type = kind switch
        {
            BufferKind.DeviceLocal => context.FindMemoryType(requirements.MemoryTypeBits, MemoryPropertyFlags.DeviceLocalBit)
                ?? context.FindMemoryType(requirements.MemoryTypeBits, 0),
            BufferKind.Upload => context.FindMemoryType(requirements.MemoryTypeBits, MemoryPropertyFlags.HostVisibleBit | MemoryPropertyFlags.HostCoherentBit),
            _ => context.FindMemoryType(requirements.MemoryTypeBits, MemoryPropertyFlags.HostVisibleBit | MemoryPropertyFlags.HostCachedBit)
                ?? context.FindMemoryType(requirements.MemoryTypeBits, MemoryPropertyFlags.HostVisibleBit),
        };
        if (type is null)
        {
            vk.DestroyBuffer(context.Device, buffer, null);
            throw new VulkanException($"the device has no memory type for a {kind} buffer");
        }
        _coherent = (context.MemoryProperties.MemoryTypes[(int)type.Value].PropertyFlags & MemoryPropertyFlags.HostCoherentBit) != 0;
        var allocation = new MemoryAllocateInfo
        {
            SType = StructureType.MemoryAllocateInfo,
            AllocationSize = requirements.Size,
            MemoryTypeIndex = type.Value,
        };
        var result = vk.AllocateMemory(context.Device, in allocation, null, out var memory);
        if (result != Result.Success)
        {
            vk.DestroyBuffer(context.Device, buffer, null);
            throw new VulkanException(result is Result.ErrorOutOfDeviceMemory or Result.ErrorOutOfHostMemory
                ? $"out of device memory allocating {size / (1024.0 * 1024.0):F1} MiB ({kind})"
                : $"vkAllocateMemory failed: {result}");
        }
        Memory = memory;
        VulkanException.Check(vk.BindBufferMemory(context.Device, buffer, memory, 0), "vkBindBufferMemory");
        if (kind != BufferKind.DeviceLocal)
        {
            void* mapped;
            VulkanException.Check(vk.MapMemory(context.Device, memory, 0, Vk.WholeSize, 0, &mapped), "vkMapMemory");
            Mapped = (byte*)mapped;
        }
    }

    /// <summary>Makes device writes visible to the host (needed when the memory is not coherent).</summary>
    public void Invalidate()
    {
        if (_coherent) return;
        var range = new MappedMemoryRange { SType = StructureType.MappedMemoryRange, Memory = Memory, Offset = 0, Size = Vk.WholeSize };
        VulkanException.Check(_context.Vk.InvalidateMappedMemoryRanges(_context.Device, 1, in range), "vkInvalidateMappedMemoryRanges");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (Mapped != null) _context.Vk.UnmapMemory(_context.Device, Memory);
        _context.Vk.DestroyBuffer(_context.Device, Handle, null);
        _context.Vk.FreeMemory(_context.Device, Memory, null);
    }
}
