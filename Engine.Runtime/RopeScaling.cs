using System.Text.Json;

namespace Engine.Runtime;

/// <summary>
/// RoPE frequency scaling from a Hugging Face config (<c>rope_scaling</c>, or <c>rope_parameters</c> in
/// transformers 5): none, <c>linear</c> (every frequency divided by the factor) or <c>llama3</c> (low frequencies
/// divided by the factor, high ones kept, a smooth blend between). Other kinds are refused, not ignored.
/// </summary>
public sealed record RopeScaling(string Kind, double Factor, double LowFrequencyFactor, double HighFrequencyFactor, double OriginalMaxPositions)
{
    public static RopeScaling? FromConfig(JsonElement? raw)
    {
        if (raw is not { ValueKind: JsonValueKind.Object } root) return null;
        foreach (string key in new[] { "rope_scaling", "rope_parameters" })
        {
            if (!root.TryGetProperty(key, out var section) || section.ValueKind != JsonValueKind.Object) continue;
            string? kind = section.TryGetProperty("rope_type", out var t) ? t.GetString()
                : section.TryGetProperty("type", out var t2) ? t2.GetString() : null;
            // Qwen2-VL's "mrope" splits the rotary pairs among position components; it does not scale frequencies.
            if (kind is null or "default" or "mrope") continue;
            double Number(string name, double fallback) =>
                section.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;
            var scaling = new RopeScaling(kind, Number("factor", 1), Number("low_freq_factor", 1), Number("high_freq_factor", 4),
                Number("original_max_position_embeddings", 8192));
            return kind is "linear" or "llama3"
                ? scaling
                : throw new NotSupportedException($"RoPE scaling '{kind}' is not supported (supported: linear, llama3)");
        }
        return null;
    }

    /// <summary>The scaled inverse frequency.</summary>
    public double Apply(double inverseFrequency)
    {
        if (Kind == "linear") return inverseFrequency / Factor;
        double wavelength = 2 * Math.PI / inverseFrequency;
        double lowWavelength = OriginalMaxPositions / LowFrequencyFactor;
        double highWavelength = OriginalMaxPositions / HighFrequencyFactor;
        if (wavelength < highWavelength) return inverseFrequency;
        if (wavelength > lowWavelength) return inverseFrequency / Factor;
        double smooth = (OriginalMaxPositions / wavelength - LowFrequencyFactor) / (HighFrequencyFactor - LowFrequencyFactor);
        return (1 - smooth) * inverseFrequency / Factor + smooth * inverseFrequency;
    }
}
