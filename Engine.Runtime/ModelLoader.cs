using Engine.Formats;
using Engine.Runtime.Cpu;
using Engine.Runtime.Models;
using Engine.Runtime.Vulkan;

namespace Engine.Runtime;

/// <summary>Opens a model file of any supported kind and loads it onto the chosen backend.</summary>
public static class ModelLoader
{
    public static ILanguageModel Load(string path, ModelOptions options)
    {
        using var file = ModelFile.Open(path);
        var backend = CreateBackend(options);
        try
        {
            return ArchitectureRegistry.Create(file.Config, file.Tensors, backend, options);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    public static IBackend CreateBackend(ModelOptions options) => options.Backend switch
    {
        BackendKind.Cpu => new CpuBackend(),
        _ => new VulkanBackend(options.DeviceIndex),
    };
}
