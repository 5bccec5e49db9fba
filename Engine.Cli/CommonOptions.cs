using System.CommandLine;
using Engine.Runtime;

namespace Engine.Cli;

/// <summary>Options shared by every command that runs a model.</summary>
public static class CommonOptions
{
    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "Print details (stack traces) with errors",
        Recursive = true,
    };

    public static Option<string> Model(bool required = true) => new("--model", "-m")
    {
        Description = "Model: a Hugging Face folder (config.json + safetensors), an .epack file or a llama2.c .bin",
        Required = required,
    };

    public static Option<BackendKind> Backend() => new("--backend")
    {
        Description = "vulkan (default) or cpu (the float64-accumulating reference)",
        HelpName = "vulkan|cpu",
        DefaultValueFactory = _ => BackendKind.Vulkan,
        CustomParser = r => r.Tokens.Single().Value.ToLowerInvariant() switch
        {
            "vulkan" => BackendKind.Vulkan,
            "cpu" => BackendKind.Cpu,
            var other => Fail<BackendKind>(r, $"unknown backend '{other}' (expected vulkan or cpu)"),
        },
    };

    public static Option<int?> Device() => new("--device")
    {
        Description = "Vulkan device index from 'engine devices' (default: ENGINE_DEVICE, else the first discrete GPU, integrated GPU, then CPU)",
    };

    public static Option<int?> Context() => new("--ctx-size", "-c")
    {
        Description = "Context length to allocate (default: the model's, at most 4096)",
    };

    public static Option<int> SefpBits() => new("--sefp-bits")
    {
        Description = "Mantissa bits read from SEFP weights, 2..7 (default: all stored); fewer bits read fewer bytes, no reload",
        HelpName = "M",
    };

    public static Option<ElementType> CacheType() => new("--cache-type")
    {
        Description = "Element type of the KV cache of attention models: f16 (default, as llama.cpp: half the cache memory and "
            + "attention reads, keys and values rounded to half precision) or f32 (as computed)",
        HelpName = "f16|f32",
        DefaultValueFactory = _ => ElementType.F16,
        CustomParser = r => r.Tokens.Single().Value.ToLowerInvariant() switch
        {
            "f16" => ElementType.F16,
            "f32" => ElementType.F32,
            var other => Fail<ElementType>(r, $"unknown cache type '{other}' (expected f16 or f32)"),
        },
    };

    private static T Fail<T>(System.CommandLine.Parsing.ArgumentResult result, string message)
    {
        result.AddError(message);
        return default!;
    }
}
