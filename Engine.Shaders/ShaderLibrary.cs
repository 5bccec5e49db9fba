namespace Engine.Shaders;

/// <summary>The SPIR-V modules embedded at build time, by variant name (<c>matvec_f16</c>, <c>rmsnorm</c>, …).</summary>
public static class ShaderLibrary
{
    public static byte[] Get(string variant)
    {
        using var stream = typeof(ShaderLibrary).Assembly.GetManifestResourceStream(variant + ".spv")
            ?? throw new ArgumentException($"no compiled shader variant named '{variant}'", nameof(variant));
        var code = new byte[stream.Length];
        stream.ReadExactly(code);
        return code;
    }

    public static IEnumerable<string> Variants =>
        typeof(ShaderLibrary).Assembly.GetManifestResourceNames()
            .Where(n => n.EndsWith(".spv", StringComparison.Ordinal))
            .Select(n => n[..^4]);
}
