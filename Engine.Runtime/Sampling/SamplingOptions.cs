namespace Engine.Runtime.Sampling;

/// <summary>How the next token is chosen. A temperature of 0 is greedy; the defaults follow llama.cpp's.</summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; } = 0.8f;

    /// <summary>Keep the K most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; } = 40;

    /// <summary>Keep the smallest set whose probability reaches P; 1 keeps all.</summary>
    public float TopP { get; init; } = 0.95f;

    /// <summary>Drop tokens less likely than MinP times the most likely one; 0 keeps all.</summary>
    public float MinP { get; init; } = 0.05f;

    /// <summary>Divide positive logits (multiply negative ones) of recently seen tokens by this; 1 disables.</summary>
    public float RepeatPenalty { get; init; } = 1.0f;

    /// <summary>How many recent tokens the repetition penalty looks at.</summary>
    public int RepeatLastN { get; init; } = 64;

    /// <summary>Seed of the random choice; the same seed and inputs give the same output.</summary>
    public int Seed { get; init; } = 42;

    public static SamplingOptions Greedy { get; } = new() { Temperature = 0 };

    /// <summary>Throws with the offending option's name when a value is out of range.</summary>
    public void Validate()
    {
        if (Temperature < 0 || float.IsNaN(Temperature)) throw new ArgumentException($"--temperature must be 0 or more, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"--top-k must be 0 or more, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"--top-p must be in (0, 1], got {TopP}");
        if (!(MinP >= 0 && MinP <= 1)) throw new ArgumentException($"--min-p must be in [0, 1], got {MinP}");
        if (!(RepeatPenalty > 0)) throw new ArgumentException($"--repeat-penalty must be above 0, got {RepeatPenalty}");
        if (RepeatLastN < 0) throw new ArgumentException($"--repeat-last-n must be 0 or more, got {RepeatLastN}");
    }
}
