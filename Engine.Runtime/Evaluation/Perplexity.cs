namespace Engine.Runtime.Evaluation;

/// <summary>Result of a perplexity run; with a base model, also the quantization-quality measures.</summary>
/// <param name="MeanKlDivergence">Mean KL(base || model) over scored positions, when a base model was given.</param>
/// <param name="TopOneAgreement">Fraction of positions where both models' most likely token agree.</param>
public sealed record PerplexityResult(double Perplexity, double MeanNegativeLogLikelihood, long ScoredTokens, int Windows,
    double? MeanKlDivergence = null, double? TopOneAgreement = null);

/// <summary>
/// Perplexity as DESIGN.md defines it: the token stream is cut into windows of <c>ctx</c> tokens, each a fresh
/// context; window i feeds tokens [i·ctx, (i+1)·ctx) and scores the predictions of tokens [i·ctx+1, (i+1)·ctx], so
/// every fed position is scored (the last one predicts the first token of the next window).
/// </summary>
public static class Perplexity
{
    public static PerplexityResult Evaluate(ILanguageModel model, IReadOnlyList<int> tokens, int context,
        ILanguageModel? baseModel = null, int? maxWindows = null, Action<int, int, double>? progress = null,
        CancellationToken cancel = default)
    {
        if (context < 2) throw new ArgumentException($"--ctx must be at least 2, got {context}");
        if (context > model.MaxContext) throw new ArgumentException($"--ctx {context} exceeds the model's context length {model.MaxContext}");
        int windows = tokens.Count < 1 ? 0 : (tokens.Count - 1) / context;
        if (maxWindows is int cap) windows = Math.Min(windows, cap);
        if (windows == 0)
            throw new ArgumentException($"the text has {tokens.Count} tokens: at least {context + 1} are needed for one window of {context}");
        if (baseModel is not null && baseModel.Config.VocabSize != model.Config.VocabSize)
            throw new ArgumentException($"the base model's vocabulary ({baseModel.Config.VocabSize}) differs from the model's ({model.Config.VocabSize})");

        int vocab = model.Config.VocabSize;
        var state = model.CreateState();
        var baseState = baseModel?.CreateState();
        var logits = new float[context * vocab];
        var baseLogits = baseModel is null ? null : new float[context * vocab];
        var window = new int[context];
        double nll = 0, kl = 0;
        long scored = 0, agree = 0;
        for (int w = 0; w < windows; w++)
        {
            cancel.ThrowIfCancellationRequested();
            for (int i = 0; i < context; i++) window[i] = tokens[w * context + i];
            state.Reset();
            model.Forward(state, window, logits, allPositions: true);
            if (baseModel is not null)
            {
                baseState!.Reset();
                baseModel.Forward(baseState, window, baseLogits, allPositions: true);
            }
            for (int i = 0; i < context; i++)
            {
                int target = tokens[w * context + i + 1];
                var row = logits.AsSpan(i * vocab, vocab);
                double logSum = LogSumExp(row);
                nll += logSum - row[target];
                if (baseLogits is not null)
                {
                    var baseRow = baseLogits.AsSpan(i * vocab, vocab);
                    kl += KlDivergence(baseRow, LogSumExp(baseRow), row, logSum);
                    if (GreedyDecoder.ArgMax(row, []) == GreedyDecoder.ArgMax(baseRow, [])) agree++;
                }
                scored++;
            }
            progress?.Invoke(w + 1, windows, Math.Exp(nll / scored));
        }
        double mean = nll / scored;
        return new PerplexityResult(Math.Exp(mean), mean, scored, windows,
            baseModel is null ? null : kl / scored, baseModel is null ? null : (double)agree / scored);
    }

    public static double LogSumExp(ReadOnlySpan<float> row)
    {
        double max = double.NegativeInfinity;
        foreach (float v in row) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in row) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }

    /// <summary>KL(p || q) with p and q given as logits and their log-normalisers.</summary>
    public static double KlDivergence(ReadOnlySpan<float> p, double pLogSum, ReadOnlySpan<float> q, double qLogSum)
    {
        double kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double logP = p[i] - pLogSum;
            kl += Math.Exp(logP) * (logP - (q[i] - qLogSum));
        }
        return kl;
    }
}
