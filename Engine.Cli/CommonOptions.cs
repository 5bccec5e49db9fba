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
            var other => Fail(r, $"unknown backend '{other}' (expected vulkan or cpu)"),
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

    private static BackendKind Fail(System.CommandLine.Parsing.ArgumentResult result, string message)
    {
        result.AddError(message);
        return default;
    }
}
