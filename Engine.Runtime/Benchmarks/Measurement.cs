namespace Engine.Runtime.Benchmarks;

/// <summary>One benchmark row: a rate measured over several repetitions.</summary>
/// <param name="Test">What was run (pp512, tg128, matvec 4096x4096).</param>
/// <param name="Format">Weight format(s) of the measured matrices.</param>
/// <param name="Rates">Per repetition: tokens/s for model tests, multiply-adds/s for kernels.</param>
/// <param name="BytesPerUnit">Weight bytes read per token (or per mat-vec), to turn rates into bandwidth.</param>
/// <param name="DispatchesPerToken">
/// Compute dispatches recorded for one decode step (generation rows on the Vulkan backend; null elsewhere).
/// </param>
/// <param name="CacheType">The KV cache's element type of the measured model (null: a kernel, or a model without one).</param>
public sealed record Measurement(string Test, string Format, IReadOnlyList<double> Rates, long BytesPerUnit, int? DispatchesPerToken = null,
    ElementType? CacheType = null)
{
    public double Mean => Rates.Average();

    public double StandardDeviation =>
        Rates.Count < 2 ? 0 : Math.Sqrt(Rates.Sum(r => (r - Mean) * (r - Mean)) / (Rates.Count - 1));

    /// <summary>Achieved weight bandwidth in GB/s (1e9 bytes).</summary>
    public double GigabytesPerSecond => Mean * BytesPerUnit / 1e9;
}
