using Engine.Formats;
using Engine.Formats.Epack;
using Engine.Runtime.Cpu;
using Engine.Runtime.Models;
using Engine.Runtime.Tokenization;
using Engine.Runtime.Vulkan;

namespace Engine.Runtime;

/// <summary>Opens a model file of any supported kind and loads it onto the chosen backend.</summary>
public static class ModelLoader
{
    public static ILanguageModel Load(string path, ModelOptions options)
    {
        using var file = ModelFile.Open(path);
        return Load(file, options);
    }

    /// <summary>Loads an opened model file (the caller keeps it open only while this runs: the weights are uploaded).</summary>
    public static ILanguageModel Load(ModelFile file, ModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(file);
        return Load(file.Config, file.Tensors, options);
    }

    /// <summary>Loads a model from a config and any tensor source (a synthetic one for benchmarks).</summary>
    public static ILanguageModel Load(ModelConfig config, ITensorSource tensors, ModelOptions options)
    {
        var backend = CreateBackend(options);
        try
        {
            return ArchitectureRegistry.Create(config, tensors, backend, options);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The model's tokenizer: embedded in an .epack file, else beside the weights (a Hugging Face folder, or the folder
    /// of a .safetensors file); null when there is none, as for llama2.c checkpoints.
    /// </summary>
    public static TextTokenizer? LoadTokenizer(ModelFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        switch (file.Tensors)
        {
            case EpackFile epack:
                if (epack.Metadata.Tokenizer is not { } embedded) return null;
                try
                {
                    return TextTokenizer.FromBytes(embedded.Kind, embedded.Data, embedded.TokenizerConfigJson, epack.Metadata.GenerationConfigJson,
                        epack.Metadata.ConfigJson, embedded.ChatTemplate);
                }
                catch (InvalidDataException e)
                {
                    throw new InvalidDataException($"{epack.Path}: embedded {e.Message}", e);
                }
            case Llama2cFile:
                return null;
            default:
                string folder = Directory.Exists(file.Path) ? file.Path : Path.GetDirectoryName(Path.GetFullPath(file.Path))!;
                return TextTokenizer.Load(folder);
        }
    }

    public static IBackend CreateBackend(ModelOptions options)
    {
        RuntimePrecisionRule.Check(options.SefpBits);
        IBackend backend = options.Backend switch
        {
            BackendKind.Cpu => new CpuBackend(),
            _ => new VulkanBackend(options.DeviceIndex),
        };
        backend.RuntimePrecision = options.SefpBits;
        return backend;
    }
}
