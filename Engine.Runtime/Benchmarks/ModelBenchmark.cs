using System.Diagnostics;
using System.Runtime.InteropServices;
using Engine.Runtime.Sampling;
using Engine.Runtime.Vulkan;

namespace Engine.Runtime.Benchmarks;

/// <summary>
/// llama-bench's two tests, prompt processing (one batch of random tokens) and generation (one token at a time,
/// greedy), and generation with sampling as <c>engine generate</c> does it.
/// </summary>
public static class ModelBenchmark
{
    /// <summary>Suffix of the sampled generation row's name: <c>tg128 sampled</c>.</summary>
    public const string SampledSuffix = " sampled";

    /// <summary>
    /// The sampled generation row's options: <c>engine generate</c>'s defaults (temperature 0.8, top-k 40, top-p 0.95,
    /// min-p 0.05, no repetition penalty) with the benchmark's seed.
    /// </summary>
    public static SamplingOptions SampledOptions(int seed) => new() { Temperature = 0.8f, TopP = 0.95f, Seed = seed };

    /// <summary>
    /// Rows pp{P}, tg{N} and, with <paramref name="sampled"/>, tg{N} sampled (each left out when its length is 0). The
    /// generation rows time, per token, the forward step with its logits read back to the host and the choice of the
    /// next token: argmax for tg, the <see cref="Sampler"/> over the tokens so far for the sampled row, as
    /// <see cref="TextGenerator"/> does. On the Vulkan backend both carry the dispatches recorded for one decode step.
    /// </summary>
    public static IReadOnlyList<Measurement> Run(ILanguageModel model, int promptTokens, int generatedTokens, int repetitions, int seed = 42, bool sampled = false)
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
            results.Add(new Measurement($"pp{promptTokens}", model.WeightFormats, rates, model.WeightBytesPerToken, CacheType: model.CacheType));
        }
        if (generatedTokens > 0)
        {
            int? dispatches = DispatchesPerDecodeStep(model, state, prompt[0], logits);
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
            results.Add(new Measurement($"tg{generatedTokens}", model.WeightFormats, rates, model.WeightBytesPerToken, dispatches, model.CacheType));

            if (sampled)
            {
                rates = [];
                var history = new List<int>(generatedTokens + 1);
                for (int r = 0; r < repetitions; r++)
                {
                    // The same tokens each repetition: a fresh sampler with the same seed, from the same first token.
                    var sampler = new Sampler(SampledOptions(seed));
                    state.Reset();
                    history.Clear();
                    history.Add(prompt[0]);
                    var clock = Stopwatch.StartNew();
                    for (int i = 0; i < generatedTokens; i++)
                    {
                        model.Forward(state, [history[^1]], logits, allPositions: false);
                        history.Add(sampler.Next(logits, CollectionsMarshal.AsSpan(history)));
                    }
                    rates.Add(generatedTokens / clock.Elapsed.TotalSeconds);
                }
                results.Add(new Measurement($"tg{generatedTokens}{SampledSuffix}", model.WeightFormats, rates, model.WeightBytesPerToken, dispatches, model.CacheType));
            }
        }
        return results;
    }

    /// <summary>
    /// Compute dispatches the Vulkan backend records for one decode step (one token after an empty state); null on
    /// other backends. Leaves the state holding that token.
    /// </summary>
    public static int? DispatchesPerDecodeStep(ILanguageModel model, IModelState state, int token, float[] logits)
    {
        if (model.Backend is not VulkanBackend vulkan) return null;
        state.Reset();
        vulkan.Recorder.ResetCounters();
        model.Forward(state, [token], logits, allPositions: false);
        return vulkan.Recorder.DispatchCount;
    }
}
