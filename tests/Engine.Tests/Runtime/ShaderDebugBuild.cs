using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Engine.Runtime.Vulkan;

namespace Engine.Tests.Runtime;

/// <summary>
/// The shader variants compiled again without <c>-O</c>, so that they keep their member names (the embedded modules
/// are built with glslc -O, which strips OpName and OpMemberName). The variants, their sources and their defines
/// come from Engine.Shaders.csproj as MSBuild evaluates it (<c>dotnet msbuild -getItem:ShaderVariant</c>); glslc is
/// the one the build uses.
/// </summary>
public static class ShaderDebugBuild
{
    private sealed record Variant(string Source, string Flags);

    private static readonly Lazy<(string Directory, Dictionary<string, Variant> Variants)> Project = new(Evaluate);
    private static readonly ConcurrentDictionary<string, SpirvModule> Modules = new();

    /// <summary>The variant compiled with names kept.</summary>
    public static SpirvModule Module(string variant) => Modules.GetOrAdd(variant, Compile);

    private static SpirvModule Compile(string variant)
    {
        var (directory, variants) = Project.Value;
        if (!variants.TryGetValue(variant, out var v))
            throw new InvalidOperationException($"Engine.Shaders.csproj has no ShaderVariant '{variant}' (the embedded modules and the project disagree: rebuild)");
        string output = Path.Combine(Path.GetTempPath(), $"engine-debug-{Environment.ProcessId}-{variant}.spv");
        try
        {
            var arguments = new List<string> { "-fshader-stage=compute", "--target-env=vulkan1.2" };
            arguments.AddRange(v.Flags.Split(' ', StringSplitOptions.RemoveEmptyEntries));
            arguments.AddRange([v.Source, "-o", output]);
            Run("glslc", arguments, directory);
            return SpirvModule.Parse(File.ReadAllBytes(output));
        }
        finally
        {
            File.Delete(output);
        }
    }

    /// <summary>Compiles a compute shader given as text (names kept unless <paramref name="flags"/> say -O).</summary>
    public static SpirvModule CompileText(string glsl, params string[] flags)
    {
        string stem = Path.Combine(Path.GetTempPath(), $"engine-test-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            File.WriteAllText(stem + ".comp", glsl);
            Run("glslc", ["-fshader-stage=compute", "--target-env=vulkan1.2", .. flags, stem + ".comp", "-o", stem + ".spv"], Path.GetTempPath());
            return SpirvModule.Parse(File.ReadAllBytes(stem + ".spv"));
        }
        finally
        {
            File.Delete(stem + ".comp");
            File.Delete(stem + ".spv");
        }
    }

    private static (string, Dictionary<string, Variant>) Evaluate()
    {
        string project = Path.Combine(RepositoryRoot(), "Engine.Shaders", "Engine.Shaders.csproj");
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        string json = Run(dotnet, ["msbuild", project, "-getItem:ShaderVariant", "-nologo", "-nodeReuse:false"], Path.GetDirectoryName(project)!);
        using var document = JsonDocument.Parse(json);
        var variants = new Dictionary<string, Variant>(StringComparer.Ordinal);
        foreach (var item in document.RootElement.GetProperty("Items").GetProperty("ShaderVariant").EnumerateArray())
        {
            string Get(string name) => item.TryGetProperty(name, out var value) ? value.GetString() ?? "" : "";
            variants[Get("Identity")] = new Variant(Get("Source"), Get("Flags"));
        }
        return (Path.GetDirectoryName(project)!, variants);
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Engine.sln")))
                return directory.FullName;
        }
        throw new InvalidOperationException($"no directory above {AppContext.BaseDirectory} holds Engine.sln: the shader sources are needed to read their member names");
    }

    private static string Run(string program, IEnumerable<string> arguments, string directory)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', start.ArgumentList)} did not finish in 2 minutes");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', start.ArgumentList)} failed ({process.ExitCode}): {error.Result}{output.Result}");
        return output.Result;
    }
}
