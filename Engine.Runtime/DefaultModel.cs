namespace Engine.Runtime;

/// <summary>
/// Finds the default model, tinyprose-14m, for commands run without <c>-m</c>: in the folder named by ENGINE_MODELS,
/// then <c>assets/models</c>, then <c>../shared/models</c>, each tried from the working directory and from the
/// repository that holds the running binary.
/// </summary>
public static class DefaultModel
{
    public const string EnvironmentVariable = "ENGINE_MODELS";
    public const string Name = "tinyprose-14m";

    public static string Find()
    {
        var searched = new List<string>();
        foreach (string folder in Folders())
        {
            foreach (string candidate in new[] { Path.Combine(folder, Name + ".epack"), Path.Combine(folder, Name) })
            {
                searched.Add(candidate);
                if (File.Exists(candidate) || Directory.Exists(candidate)) return candidate;
            }
        }
        throw new FileNotFoundException(
            $"the default model {Name} was not found (looked in {string.Join(", ", searched.Select(Path.GetDirectoryName).Distinct())}); pass -m PATH or set {EnvironmentVariable}");
    }

    private static IEnumerable<string> Folders()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment)) yield return fromEnvironment;
        foreach (string root in Roots())
        {
            yield return Path.Combine(root, "assets", "models");
            yield return Path.GetFullPath(Path.Combine(root, "..", "shared", "models"));
        }
    }

    private static IEnumerable<string> Roots()
    {
        yield return Directory.GetCurrentDirectory();
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Engine.sln"))) yield return directory.FullName;
        }
    }
}
