using Engine.Formats;

namespace Engine.Runtime;

/// <summary>What a model carries from one call to the next: a KV cache, or a recurrent state.</summary>
public interface IModelState
{
    /// <summary>Tokens consumed so far: the position of the next token.</summary>
    int Position { get; }

    /// <summary>Forgets every consumed token.</summary>
    void Reset();
}

/// <summary>A loaded model on a backend. One implementation per architecture family.</summary>
public interface ILanguageModel : IDisposable
{
    ModelConfig Config { get; }

    IBackend Backend { get; }

    /// <summary>Largest number of positions a state can hold.</summary>
    int MaxContext { get; }

    /// <summary>Bytes of weights one decoded token reads (every matrix but the embedding table, of which one row is read).</summary>
    long WeightBytesPerToken { get; }

    /// <summary>The storage formats of the weight matrices, for reports (e.g. "bf16" or "q4+f16").</summary>
    string WeightFormats { get; }

    /// <summary>The element type of the KV cache a state holds; null for a model without one (a recurrent state).</summary>
    ElementType? CacheType => null;

    IModelState CreateState();

    /// <summary>
    /// Feeds <paramref name="tokens"/> at the state's position and advances it. Writes the logits of every fed
    /// position ([tokens][vocab]) when <paramref name="allPositions"/>, else of the last one ([vocab]).
    /// </summary>
    void Forward(IModelState state, ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions);
}
