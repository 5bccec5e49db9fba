using Engine.Shaders;
using Silk.NET.Core.Native;
using Silk.NET.Vulkan;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// One compute pipeline made from an embedded SPIR-V variant: its descriptor-set layout (storage buffers at
/// bindings 0..n-1), push-constant range and pipeline. Created once per backend and reused for every dispatch.
/// </summary>
internal sealed unsafe class ComputeKernel : IDisposable
{
    private readonly VulkanContext _context;
    private bool _disposed;

    public string Name { get; }
    public int BindingCount { get; }
    public uint PushConstantSize { get; }
    public DescriptorSetLayout SetLayout { get; }
    public PipelineLayout Layout { get; }
    public Pipeline Pipeline { get; }

    /// <param name="constants">Values of specialization constants 0, 1, … (constant 0 is the workgroup size where declared).</param>
    public ComputeKernel(VulkanContext context, string name, int bindingCount, uint pushConstantSize, uint[] constants)
    {
        _context = context;
        Name = name;
        BindingCount = bindingCount;
        PushConstantSize = pushConstantSize;
        var vk = context.Vk;
        var device = context.Device;

        var bindings = stackalloc DescriptorSetLayoutBinding[bindingCount];
        for (int i = 0; i < bindingCount; i++)
        {
            bindings[i] = new DescriptorSetLayoutBinding
            {
                Binding = (uint)i,
                DescriptorType = DescriptorType.StorageBuffer,
                DescriptorCount = 1,
                StageFlags = ShaderStageFlags.ComputeBit,
            };
        }
        var setLayoutInfo = new DescriptorSetLayoutCreateInfo
        {
            SType = StructureType.DescriptorSetLayoutCreateInfo,
            BindingCount = (uint)bindingCount,
            PBindings = bindings,
        };
        VulkanException.Check(vk.CreateDescriptorSetLayout(device, in setLayoutInfo, null, out var setLayout), "vkCreateDescriptorSetLayout");
        SetLayout = setLayout;

        var pushRange = new PushConstantRange { StageFlags = ShaderStageFlags.ComputeBit, Offset = 0, Size = pushConstantSize };
        var layoutInfo = new PipelineLayoutCreateInfo
        {
            SType = StructureType.PipelineLayoutCreateInfo,
            SetLayoutCount = 1,
            PSetLayouts = &setLayout,
            PushConstantRangeCount = 1,
            PPushConstantRanges = &pushRange,
        };
        VulkanException.Check(vk.CreatePipelineLayout(device, in layoutInfo, null, out var layout), "vkCreatePipelineLayout");
        Layout = layout;

        byte[] code = ShaderLibrary.Get(name);
        ShaderModule module;
        fixed (byte* pCode = code)
        {
            var moduleInfo = new ShaderModuleCreateInfo
            {
                SType = StructureType.ShaderModuleCreateInfo,
                CodeSize = (nuint)code.Length,
                PCode = (uint*)pCode,
            };
            VulkanException.Check(vk.CreateShaderModule(device, in moduleInfo, null, out module), "vkCreateShaderModule");
        }

        var entry = (byte*)SilkMarshal.StringToPtr("main");
        try
        {
            var entries = stackalloc SpecializationMapEntry[constants.Length];
            for (int i = 0; i < constants.Length; i++)
                entries[i] = new SpecializationMapEntry { ConstantID = (uint)i, Offset = (uint)(i * sizeof(uint)), Size = sizeof(uint) };
            fixed (uint* values = constants)
            {
                var specialization = new SpecializationInfo
                {
                    MapEntryCount = (uint)constants.Length,
                    PMapEntries = entries,
                    DataSize = (nuint)(constants.Length * sizeof(uint)),
                    PData = values,
                };
                var pipelineInfo = new ComputePipelineCreateInfo
                {
                    SType = StructureType.ComputePipelineCreateInfo,
                    Stage = new PipelineShaderStageCreateInfo
                    {
                        SType = StructureType.PipelineShaderStageCreateInfo,
                        Stage = ShaderStageFlags.ComputeBit,
                        Module = module,
                        PName = entry,
                        PSpecializationInfo = constants.Length == 0 ? null : &specialization,
                    },
                    Layout = layout,
                };
                VulkanException.Check(vk.CreateComputePipelines(device, default, 1, in pipelineInfo, null, out var pipeline), $"vkCreateComputePipelines({name})");
                Pipeline = pipeline;
            }
        }
        finally
        {
            SilkMarshal.Free((nint)entry);
            vk.DestroyShaderModule(device, module, null);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        var vk = _context.Vk;
        vk.DestroyPipeline(_context.Device, Pipeline, null);
        vk.DestroyPipelineLayout(_context.Device, Layout, null);
        vk.DestroyDescriptorSetLayout(_context.Device, SetLayout, null);
    }
}
