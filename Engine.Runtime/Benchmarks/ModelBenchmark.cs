using System.Diagnostics;

namespace Engine.Runtime.Benchmarks;

/// <summary>llama-bench's two tests: prompt processing (one batch of random tokens) and generation (one token at a time).</summary>
public static class ModelBenchmark
{
    public static IReadOnlyList<Measurement> Run(ILanguageModel model, int promptTokens, int generatedTokens, int repetitions, int seed = 42)
    {
        if (promptTokens < 0 || generatedTokens < 0 || repetitions < 1)
            throw new ArgumentException("prompt and generation lengths must be 0 or more and repetitions at least 1");
        if (promptTokens + generatedTokens > model.MaxContext)
            throw new ArgumentException($"{promptTokens} + {generatedTokens} tokens exceed the context length {model.MaxContext}");
        var random = new Random(seed);
        int vocab = model.Config.VocabSize;
        var state = model.CreateState();
        var logits = new float[vocab];
        int[] prompt = Enumerable.Range(0, Math.Max(promptTokens, 1)).Select(_ => random.Next(vocab)).ToArray();
        var results = new List<Measurement>();

        // Warm-up: pipelines, descriptor sets and caches are made on first use, not timed.
        model.Forward(state, prompt.AsSpan(0, Math.Min(prompt.Length, 8)), logits, allPositions: false);
        model.Forward(state, [prompt[0]], logits, allPositions: false);

        if (promptTokens > 0)
        {
            var rates = new List<double>();
            for (int r = 0; r < repetitions; r++)
            {
                state.Reset();
                var clock = Stopwatch.StartNew();
                model.Forward(state, prompt, logits, allPositions: false);
                rates.Add(promptTokens / clock.Elapsed.TotalSeconds);
            }
            results.Add(new Measurement($"pp{promptTokens}", model.WeightFormats, rates, model.WeightBytesPerToken));
        }
        if (generatedTokens > 0)
        {
            var rates = new List<double>();
            for (int r = 0; r < repetitions; r++)
            {
                state.Reset();
                int token = prompt[0];
                var clock = Stopwatch.StartNew();
                for (int i = 0; i < generatedTokens; i++)
                {
                    model.Forward(state, [token], logits, allPositions: false);
                    token = GreedyDecoder.ArgMax(logits, []);
                }
                rates.Add(generatedTokens / clock.Elapsed.TotalSeconds);
            }
            results.Add(new Measurement($"tg{generatedTokens}", model.WeightFormats, rates, model.WeightBytesPerToken));
        }
        return results;
    }
}
