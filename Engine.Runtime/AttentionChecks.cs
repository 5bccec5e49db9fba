namespace Engine.Runtime;

/// <summary>The argument rules of <see cref="IBackend.Attention"/>, shared by the backends.</summary>
internal static class AttentionChecks
{
    public static void Validate(int tokens, int pos0, int heads, int kvHeads, int headDim, bool causal, int window)
    {
        if (tokens < 0) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "the token count must not be negative");
        if (pos0 < 0) throw new ArgumentOutOfRangeException(nameof(pos0), pos0, "the first position must not be negative");
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0)
            throw new ArgumentException($"{heads} query heads cannot share {kvHeads} key/value heads evenly");
        if (headDim <= 0) throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the head dimension must be positive");
        if (window < 0) throw new ArgumentOutOfRangeException(nameof(window), window, "the sliding window must be 0 (unlimited) or positive");
        if (window > 0 && !causal) throw new ArgumentException("a sliding window applies to causal attention only", nameof(window));
    }
}
