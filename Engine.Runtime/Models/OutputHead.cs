namespace Engine.Runtime.Models;

/// <summary>
/// What every language model's Forward shares: the argument checks, the tokens cut into batches of at most the
/// model's batch size, and the logits of every position or only the last through the final norm and the head, at
/// most <see cref="Rows"/> rows at a time (the logits buffer stays small for large vocabularies).
/// </summary>
internal sealed class OutputHead
{
    /// <summary>Runs the layers on one batch (and advances the state), leaving its hidden states in the first rows of the hidden tensor.</summary>
    public delegate void BatchRunner(ReadOnlySpan<int> batch);

    private const int Rows = 64;

    private readonly IBackend _backend;
    private readonly IWeightMatrix _head;               // [V, D]
    private readonly ITensor _hidden, _normed, _logits;  // [B, D], [B, D], [min(B, Rows), V]
    private readonly Action<ITensor, int>? _finalNorm;   // normalises the first rows of a tensor in place
    private readonly ProductFusion _headFusion;          // or an RMSNorm folded into the head's product
    private readonly int _dim, _vocab, _maxBatch, _maxContext;

    public OutputHead(IBackend backend, IWeightMatrix head, ITensor hidden, ITensor normed, Action<ITensor, int> finalNorm,
        int dim, int vocab, int maxBatch, int maxContext)
        : this(backend, head, hidden, normed, finalNorm, default, dim, vocab, maxBatch, maxContext)
    {
    }

    /// <summary>A head whose final norm is an RMSNorm, folded into the head's product.</summary>
    public OutputHead(IBackend backend, IWeightMatrix head, ITensor hidden, ITensor normed, ProductFusion rmsNorm,
        int dim, int vocab, int maxBatch, int maxContext)
        : this(backend, head, hidden, normed, null, rmsNorm, dim, vocab, maxBatch, maxContext)
    {
    }

    private OutputHead(IBackend backend, IWeightMatrix head, ITensor hidden, ITensor normed, Action<ITensor, int>? finalNorm, ProductFusion headFusion,
        int dim, int vocab, int maxBatch, int maxContext)
    {
        (_backend, _head, _hidden, _normed, _finalNorm, _headFusion) = (backend, head, hidden, normed, finalNorm, headFusion);
        (_dim, _vocab, _maxBatch, _maxContext) = (dim, vocab, maxBatch, maxContext);
        _logits = backend.Allocate(Math.Min(maxBatch, Rows) * vocab);
    }

    /// <summary>
    /// Feeds <paramref name="tokens"/> from <paramref name="position"/> batch by batch and writes the logits of every
    /// position ([tokens][vocab]) when <paramref name="allPositions"/>, else of the last one ([vocab]).
    /// </summary>
    public void Forward(int position, ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions, BatchRunner runBatch)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to feed", nameof(tokens));
        if ((long)position + tokens.Length > _maxContext)
            throw new ArgumentException($"context full: {position} + {tokens.Length} tokens exceed the context length {_maxContext}");
        int expected = allPositions ? tokens.Length * _vocab : _vocab;
        if (logits.Length != expected)
            throw new ArgumentException($"logits buffer holds {logits.Length} floats, {expected} needed", nameof(logits));

        for (int start = 0; start < tokens.Length; start += _maxBatch)
        {
            int count = Math.Min(_maxBatch, tokens.Length - start);
            runBatch(tokens.Slice(start, count));
            if (allPositions)
                Logits(0, count, logits.Slice(start * _vocab, count * _vocab));
            else if (start + count == tokens.Length)
                Logits(count - 1, 1, logits);
        }
    }

    /// <summary>Final norm and head for batch rows [first, first + count) of the hidden states, read into <paramref name="destination"/>.</summary>
    private void Logits(int first, int count, Span<float> destination)
    {
        for (int done = 0; done < count; done += Rows)
        {
            int rows = Math.Min(Rows, count - done);
            var input = _hidden;
            if (first + done > 0 || _finalNorm is not null)
            {
                _backend.Copy(_hidden, (first + done) * _dim, _normed, 0, rows * _dim);
                input = _normed;
            }
            _finalNorm?.Invoke(_normed, rows);
            _backend.Linear(_head, null, input, _logits, rows, _headFusion);
            _backend.Read(_logits, destination.Slice(done * _vocab, rows * _vocab));
        }
    }
}
