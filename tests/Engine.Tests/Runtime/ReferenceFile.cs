using System.Text.Json;

namespace Engine.Tests.Runtime;

/// <summary>A reference.json from ../shared: prompt ids, per-position logits and greedy tokens.</summary>
public sealed class ReferenceFile
{
    public int[] InputIds { get; }
    public float[][] Logits { get; }
    public int[] GreedyNewTokens { get; }

    /// <summary>Normalised image tensor of a vision model's prompt (row-major), or null for text.</summary>
    public float[]? PixelValues { get; }

    public int[]? PixelValuesShape { get; }

    public ReferenceFile(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = document.RootElement;
        InputIds = Ints(root.TryGetProperty("input_ids", out var ids) ? ids : root.GetProperty("prompt_ids"));
        Logits = root.TryGetProperty("logits", out var logits)
            ? logits.EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray()
            : [];
        GreedyNewTokens = Ints(root.GetProperty("greedy_new_tokens"));
        if (root.TryGetProperty("pixel_values", out var pixels))
        {
            PixelValues = pixels.EnumerateArray().Select(v => v.GetSingle()).ToArray();
            PixelValuesShape = Ints(root.GetProperty("pixel_values_shape"));
        }
    }

    private static int[] Ints(JsonElement array) => array.EnumerateArray().Select(v => v.GetInt32()).ToArray();
}
