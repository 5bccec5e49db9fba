namespace Engine.Runtime.Sampling;

/// <summary>
/// Picks tokens from logits: repetition penalty, then greedy when the temperature is 0, else top-k, temperature,
/// top-p and min-p filtering and a draw from the seeded generator (llama.cpp's order).
/// </summary>
public sealed class Sampler
{
    private readonly SamplingOptions _options;
    private readonly Random _random;

    public Sampler(SamplingOptions options)
    {
        options.Validate();
        _options = options;
        _random = new Random(options.Seed);
    }

    /// <param name="logits">Logits of the vocabulary; modified in place by the penalty.</param>
    /// <param name="recent">Tokens seen so far (prompt and output), for the repetition penalty.</param>
    /// <param name="suppressed">Ids that must not be chosen.</param>
    public int Next(Span<float> logits, ReadOnlySpan<int> recent, IReadOnlyCollection<int>? suppressed = null)
    {
        if (_options.RepeatPenalty != 1f && _options.RepeatLastN > 0)
        {
            var window = recent.Length > _options.RepeatLastN ? recent[^_options.RepeatLastN..] : recent;
            foreach (int token in new HashSet<int>(window.ToArray()))
            {
                if ((uint)token >= (uint)logits.Length) continue;
                logits[token] = logits[token] > 0 ? logits[token] / _options.RepeatPenalty : logits[token] * _options.RepeatPenalty;
            }
        }
        suppressed ??= [];
        if (_options.Temperature == 0) return GreedyDecoder.ArgMax(logits, suppressed);

        // Candidates sorted by logit, best first.
        var candidates = new List<int>(logits.Length);
        for (int i = 0; i < logits.Length; i++)
        {
            if (!suppressed.Contains(i) && !float.IsNegativeInfinity(logits[i])) candidates.Add(i);
        }
        if (candidates.Count == 0) throw new InvalidOperationException("every token is suppressed: nothing to sample");
        var values = logits.ToArray();
        candidates.Sort((a, b) => values[b].CompareTo(values[a]));
        if (_options.TopK > 0 && candidates.Count > _options.TopK) candidates.RemoveRange(_options.TopK, candidates.Count - _options.TopK);

        double max = values[candidates[0]];
        var probabilities = candidates.Select(t => Math.Exp((values[t] - max) / _options.Temperature)).ToArray();
        double total = probabilities.Sum();
        int keep = candidates.Count;
        if (_options.TopP < 1)
        {
            double cumulative = 0;
            for (int i = 0; i < candidates.Count; i++)
            {
                cumulative += probabilities[i] / total;
                if (cumulative >= _options.TopP)
                {
                    keep = i + 1;
                    break;
                }
            }
        }
        if (_options.MinP > 0)
        {
            double threshold = _options.MinP * probabilities[0];
            int above = 1;
            while (above < keep && probabilities[above] >= threshold) above++;
            keep = above;
        }

        double kept = 0;
        for (int i = 0; i < keep; i++) kept += probabilities[i];
        double draw = _random.NextDouble() * kept;
        for (int i = 0; i < keep; i++)
        {
            draw -= probabilities[i];
            if (draw < 0) return candidates[i];
        }
        return candidates[keep - 1];
    }
}
