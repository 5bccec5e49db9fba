namespace Engine.Runtime;

/// <summary>Greedy continuation through the model's cache or state.</summary>
public static class GreedyDecoder
{
    /// <summary>
    /// Picks <paramref name="count"/> tokens by argmax, starting from the logits of the last fed position, with the
    /// <paramref name="suppressed"/> ids (end-of-sequence) masked to -inf at every step, as Hugging Face's
    /// min_new_tokens does, so exactly <paramref name="count"/> tokens come out.
    /// </summary>
    public static int[] Continue(ILanguageModel model, IModelState state, ReadOnlySpan<float> lastLogits, int count, IReadOnlyCollection<int> suppressed)
    {
        var logits = lastLogits.ToArray();
        var tokens = new int[count];
        for (int i = 0; i < count; i++)
        {
            tokens[i] = ArgMax(logits, suppressed);
            if (i + 1 < count) model.Forward(state, [tokens[i]], logits, allPositions: false);
        }
        return tokens;
    }

    /// <summary>Index of the largest value (the first on ties), skipping <paramref name="suppressed"/> ids.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits, IReadOnlyCollection<int> suppressed)
    {
        int best = -1;
        for (int i = 0; i < logits.Length; i++)
        {
            if (suppressed.Contains(i)) continue;
            if (best < 0 || logits[i] > logits[best]) best = i;
        }
        return best;
    }
}
