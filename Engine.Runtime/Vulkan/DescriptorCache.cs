using Silk.NET.Vulkan;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// Descriptor sets keyed by kernel and bound slices. A model binds the same slices at every step (activations
/// are allocated once at their largest size), so each set is written once and reused for every token.
/// </summary>
internal sealed unsafe class DescriptorCache(VulkanContext context) : IDisposable
{
    private const uint SetsPerPool = 256;
    private const int MaxBindings = 11;   // the selective scan binds eleven

    private readonly Dictionary<Key, DescriptorSet> _sets = [];
    private readonly List<DescriptorPool> _pools = [];
    private uint _leftInPool;

    private readonly record struct Key(ComputeKernel Kernel, BufferSlice B0, BufferSlice B1, BufferSlice B2, BufferSlice B3, BufferSlice B4, BufferSlice B5,
        BufferSlice B6, BufferSlice B7, BufferSlice B8, BufferSlice B9, BufferSlice B10);

    public int Count => _sets.Count;

    public DescriptorSet Get(ComputeKernel kernel, ReadOnlySpan<BufferSlice> slices)
    {
        if (slices.Length != kernel.BindingCount || slices.Length > MaxBindings)
            throw new ArgumentException($"{kernel.Name} takes {kernel.BindingCount} buffers, got {slices.Length} (at most {MaxBindings})");
        var key = new Key(kernel, At(slices, 0), At(slices, 1), At(slices, 2), At(slices, 3), At(slices, 4), At(slices, 5),
            At(slices, 6), At(slices, 7), At(slices, 8), At(slices, 9), At(slices, 10));
        if (_sets.TryGetValue(key, out var set)) return set;
        set = Allocate(kernel.SetLayout);
        var infos = stackalloc DescriptorBufferInfo[slices.Length];
        var writes = stackalloc WriteDescriptorSet[slices.Length];
        for (int i = 0; i < slices.Length; i++)
        {
            infos[i] = new DescriptorBufferInfo { Buffer = slices[i].Buffer.Handle, Offset = slices[i].Offset, Range = slices[i].Size };
            writes[i] = new WriteDescriptorSet
            {
                SType = StructureType.WriteDescriptorSet,
                DstSet = set,
                DstBinding = (uint)i,
                DescriptorCount = 1,
                DescriptorType = DescriptorType.StorageBuffer,
                PBufferInfo = &infos[i],
            };
        }
        context.Vk.UpdateDescriptorSets(context.Device, (uint)slices.Length, writes, 0, null);
        _sets[key] = set;
        return set;
    }

    public void Dispose()
    {
        foreach (var pool in _pools) context.Vk.DestroyDescriptorPool(context.Device, pool, null);
        _pools.Clear();
        _sets.Clear();
    }

    private static BufferSlice At(ReadOnlySpan<BufferSlice> slices, int i) => i < slices.Length ? slices[i] : default;

    private DescriptorSet Allocate(DescriptorSetLayout layout)
    {
        if (_leftInPool == 0)
        {
            var size = new DescriptorPoolSize { Type = DescriptorType.StorageBuffer, DescriptorCount = SetsPerPool * MaxBindings };
            var poolInfo = new DescriptorPoolCreateInfo
            {
                SType = StructureType.DescriptorPoolCreateInfo,
                MaxSets = SetsPerPool,
                PoolSizeCount = 1,
                PPoolSizes = &size,
            };
            VulkanException.Check(context.Vk.CreateDescriptorPool(context.Device, in poolInfo, null, out var pool), "vkCreateDescriptorPool");
            _pools.Add(pool);
            _leftInPool = SetsPerPool;
        }
        var allocateInfo = new DescriptorSetAllocateInfo
        {
            SType = StructureType.DescriptorSetAllocateInfo,
            DescriptorPool = _pools[^1],
            DescriptorSetCount = 1,
            PSetLayouts = &layout,
        };
        VulkanException.Check(context.Vk.AllocateDescriptorSets(context.Device, in allocateInfo, out var set), "vkAllocateDescriptorSets");
        _leftInPool--;
        return set;
    }
}
