using System.Diagnostics;
using System.Runtime.InteropServices;
using Engine.Runtime.Sampling;
using Engine.Runtime.Tokenization;

namespace Engine.Runtime;

/// <summary>Counts and timings of one generation call.</summary>
public sealed record GenerationStats(int PromptTokens, TimeSpan PromptTime, int GeneratedTokens, TimeSpan GenerationTime, bool Stopped, bool Cancelled)
{
    public double PromptTokensPerSecond => PromptTokens / Math.Max(PromptTime.TotalSeconds, 1e-9);
    public double GeneratedTokensPerSecond => GeneratedTokens / Math.Max(GenerationTime.TotalSeconds, 1e-9);
}

/// <summary>
/// A conversation with a model: the tokens its state holds, and generation that streams text as tokens complete it.
/// A new prompt that extends what the state holds reuses the cache; anything else starts afresh.
/// </summary>
public sealed class TextGenerator(ILanguageModel model, TextTokenizer tokenizer)
{
    private readonly IModelState _state = model.CreateState();
    private readonly List<int> _history = [];

    public ILanguageModel Model => model;
    public TextTokenizer Tokenizer => tokenizer;

    /// <summary>The tokens the model's state holds, in order.</summary>
    public IReadOnlyList<int> History => _history;

    /// <summary>Forgets the conversation: its tokens and, for a multimodal model, its images.</summary>
    public void Reset()
    {
        if (model is IMultimodalModel multimodal) multimodal.ClearImages(_state);
        Rewind();
    }

    /// <summary>
    /// Attaches an image to the conversation (a multimodal model only): the prompts' image tokens take the features of
    /// the attached images in order (<see cref="IMultimodalModel"/>).
    /// </summary>
    public void AddImage(ReadOnlySpan<float> pixelValues, ReadOnlySpan<int> shape)
    {
        var multimodal = model as IMultimodalModel
            ?? throw new NotSupportedException($"the model ({model.Config.Architecture}) reads no images");
        multimodal.AddImages(_state, pixelValues, shape);
    }

    /// <summary>Empties the state but keeps its images, so the prompt can be fed again from the start.</summary>
    private void Rewind()
    {
        _state.Reset();
        _history.Clear();
    }

    /// <summary>
    /// Brings the state to hold exactly <paramref name="prompt"/> (feeding only what is new), then samples up to
    /// <paramref name="maxTokens"/> tokens, stopping at a stop token (not emitted) or on cancellation.
    /// </summary>
    public GenerationStats Generate(IReadOnlyList<int> prompt, int maxTokens, Sampler sampler, Action<string> onText, CancellationToken cancel = default)
    {
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty");
        int common = 0;
        while (common < _history.Count && common < prompt.Count - 1 && _history[common] == prompt[common]) common++;
        if (common < _history.Count)
        {
            // The state cannot be rewound to a prefix, so a diverging prompt starts from scratch.
            Rewind();
            common = 0;
        }
        if (prompt.Count + maxTokens > model.MaxContext)
            throw new ArgumentException($"the prompt ({prompt.Count} tokens) and {maxTokens} new tokens exceed the context length {model.MaxContext}");

        var logits = new float[model.Config.VocabSize];
        var clock = Stopwatch.StartNew();
        var fresh = prompt.Skip(common).ToArray();
        model.Forward(_state, fresh, logits, allPositions: false);
        _history.AddRange(fresh);
        var promptTime = clock.Elapsed;

        clock.Restart();
        var decoder = tokenizer.CreateStreamingDecoder();
        int generated = 0;
        bool stopped = false, cancelled = false;
        while (generated < maxTokens)
        {
            if (cancel.IsCancellationRequested)
            {
                cancelled = true;
                break;
            }
            int token = sampler.Next(logits, CollectionsMarshal.AsSpan(_history));
            if (tokenizer.StopIds.Contains(token))
            {
                stopped = true;
                break;
            }
            generated++;
            onText(decoder.Append(token));
            _history.Add(token);
            model.Forward(_state, [token], logits, allPositions: false);
        }
        onText(decoder.Flush());
        return new GenerationStats(fresh.Length, promptTime, generated, clock.Elapsed, stopped, cancelled);
    }
}
