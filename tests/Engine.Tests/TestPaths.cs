namespace Engine.Tests;

/// <summary>
/// Locates the shared data folder (models, fixtures) that sits beside the repository: the first directory above
/// the test binaries that holds <c>Engine.sln</c> has it at <c>../shared</c>. The environment variable
/// <c>ENGINE_SHARED</c> overrides the search (for builds outside the repository).
/// </summary>
public static class TestPaths
{
    private static readonly Lazy<string?> Root = new(FindSharedRoot);

    /// <summary>The shared folder, or null when it cannot be found.</summary>
    public static string? SharedRoot => Root.Value;

    /// <summary>
    /// A path inside the shared folder. Throws (failing the test with the reason) when the shared folder or the
    /// requested entry is missing: a test that needs shared data must not pass without it.
    /// </summary>
    public static string Shared(params string[] parts)
    {
        string root = SharedRoot ?? throw new InvalidOperationException(
            $"shared test data not found: no directory above {AppContext.BaseDirectory} holds Engine.sln with a ../shared folder beside it, and ENGINE_SHARED is not set");
        string path = Path.Combine([root, .. parts]);
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new FileNotFoundException($"shared test data '{Path.Combine(parts)}' is missing (looked for {path})", path);
        return path;
    }

    private static string? FindSharedRoot()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable("ENGINE_SHARED");
        if (!string.IsNullOrEmpty(fromEnvironment))
            return Directory.Exists(fromEnvironment) ? Path.GetFullPath(fromEnvironment) : null;

        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (!File.Exists(Path.Combine(directory.FullName, "Engine.sln")))
                continue;
            string shared = Path.GetFullPath(Path.Combine(directory.FullName, "..", "shared"));
            if (Directory.Exists(shared))
                return shared;
        }
        return null;
    }
}
