using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// What a Mamba model carries between calls: per layer, the last K-1 inputs of the causal convolution
/// ([channels][K-1]) and the state-space state ([channels][state size]). Its size does not depend on the context.
/// </summary>
public sealed class MambaState : IModelState
{
    private readonly IBackend _backend;
    private readonly float[] _zeros;

    internal MambaState(IBackend backend, int layers, int convLength, int ssmLength)
    {
        _backend = backend;
        Conv = new ITensor[layers];
        Ssm = new ITensor[layers];
        for (int i = 0; i < layers; i++)
        {
            Conv[i] = backend.Allocate(convLength);
            Ssm[i] = backend.Allocate(ssmLength);
        }
        _zeros = new float[Math.Max(convLength, ssmLength)];
    }

    public ITensor[] Conv { get; }
    public ITensor[] Ssm { get; }
    public int Position { get; internal set; }

    public void Reset()
    {
        foreach (var tensor in Conv.Concat(Ssm)) _backend.Write(tensor, 0, _zeros.AsSpan(0, tensor.Length));
        Position = 0;
    }
}

/// <summary>
/// The frame Mamba-1 and Mamba-2 share: embeddings, pre-norm residual blocks around a mixer (the subclass's), final
/// RMSNorm and a head tied to the embeddings unless lm_head.weight exists. Shapes: D = hidden size, V = vocab.
/// </summary>
public abstract class SsmModel : ILanguageModel
{
    /// <summary>Positions a state may hold when the options set no limit: the state's size does not grow with them.</summary>
    public const int DefaultMaxContext = 1 << 20;

    private const int LogitsBatch = 64;

    private readonly IWeightMatrix _embedding;   // [V, D]
    private readonly IWeightMatrix _head;        // [V, D], the embedding when tied
    private readonly ITensor _finalNorm;         // [D]
    private readonly ITensor[] _blockNorms;      // [layers][D]
    private readonly ITensor _x, _logits;

    public ModelConfig Config { get; }
    public IBackend Backend { get; }
    public int MaxContext { get; }

    protected int Dim { get; }
    protected int Vocab { get; }
    protected int MaxBatch { get; }
    protected float Eps { get; }

    /// <summary>The block's normalised input on the way in, the mixer's output on the way out: [batch][D].</summary>
    protected ITensor Normed { get; }

    public long WeightBytesPerToken => MatricesReadPerToken().Sum(m => m.ByteSize);

    public string WeightFormats =>
        string.Join("+", MatricesReadPerToken().Prepend(_embedding).Select(m => WeightTypes.Get(m.Type).Name).Distinct());

    private IEnumerable<IWeightMatrix> MatricesReadPerToken() => LayerMatrices.Prepend(_head);

    /// <summary>Every matrix of every layer.</summary>
    protected abstract IEnumerable<IWeightMatrix> LayerMatrices { get; }

    /// <summary>Floats of one layer's convolution state and state-space state.</summary>
    protected abstract (int Conv, int Ssm) StateLengths { get; }

    private protected SsmModel(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options, WeightLoader loader)
    {
        Config = config;
        Backend = backend;
        Dim = config.HiddenSize;
        Vocab = config.VocabSize;
        Eps = (float)config.RmsNormEps;
        MaxContext = options.MaxContext ?? DefaultMaxContext;
        if (MaxContext <= 0) throw new InvalidDataException($"context length {MaxContext} is not positive");
        MaxBatch = Math.Clamp(options.MaxBatch, 1, MaxContext);

        _embedding = loader.Matrix("backbone.embeddings.weight", Vocab, Dim);
        _head = tensors.TryGet("lm_head.weight", out _) ? loader.Matrix("lm_head.weight", Vocab, Dim) : _embedding;
        _finalNorm = loader.Vector("backbone.norm_f.weight", Dim);
        _blockNorms = Enumerable.Range(0, config.LayerCount).Select(i => loader.Vector($"backbone.layers.{i}.norm.weight", Dim)).ToArray();
        _x = backend.Allocate(MaxBatch * Dim);
        Normed = backend.Allocate(MaxBatch * Dim);
        _logits = backend.Allocate(Math.Min(MaxBatch, LogitsBatch) * Vocab);
    }

    /// <summary>Layer <paramref name="layer"/>'s mixer on the first <paramref name="tokens"/> rows of <see cref="Normed"/>, in place.</summary>
    private protected abstract void Mixer(int layer, MambaState state, int tokens);

    public IModelState CreateState()
    {
        var (conv, ssm) = StateLengths;
        return new MambaState(Backend, Config.LayerCount, conv, ssm);
    }

    public void Forward(IModelState state, ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions)
    {
        var mamba = state as MambaState ?? throw new ArgumentException("the state was made by another model", nameof(state));
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to feed", nameof(tokens));
        if (mamba.Position + tokens.Length > MaxContext)
            throw new ArgumentException($"context full: {mamba.Position} + {tokens.Length} tokens exceed the context length {MaxContext}");
        int expected = allPositions ? tokens.Length * Vocab : Vocab;
        if (logits.Length != expected)
            throw new ArgumentException($"logits buffer holds {logits.Length} floats, {expected} needed", nameof(logits));

        for (int start = 0; start < tokens.Length; start += MaxBatch)
        {
            int count = Math.Min(MaxBatch, tokens.Length - start);
            var be = Backend;
            be.Embedding(_embedding, tokens.Slice(start, count), _x);
            for (int i = 0; i < _blockNorms.Length; i++)
            {
                be.RmsNorm(_x, _blockNorms[i], Normed, count, Dim, Eps);
                Mixer(i, mamba, count);
                be.Add(_x, Normed, _x, count * Dim);
            }
            if (allPositions)
                Logits(0, count, logits.Slice(start * Vocab, count * Vocab));
            else if (start + count == tokens.Length)
                Logits(count - 1, 1, logits);
            mamba.Position += count;
        }
    }

    public void Dispose() => Backend.Dispose();

    /// <summary>Final norm and head for batch rows [first, first + count) of _x, read into <paramref name="destination"/>.</summary>
    private void Logits(int first, int count, Span<float> destination)
    {
        var be = Backend;
        for (int done = 0; done < count; done += LogitsBatch)
        {
            int rows = Math.Min(LogitsBatch, count - done);
            be.Copy(_x, (first + done) * Dim, Normed, 0, rows * Dim);
            be.RmsNorm(Normed, _finalNorm, Normed, rows, Dim, Eps);
            be.Linear(_head, null, Normed, _logits, rows);
            be.Read(_logits, destination.Slice(done * Vocab, rows * Vocab));
        }
    }

    /// <summary>-exp(A_log): the decay rates of the state, stored as logs of their magnitudes.</summary>
    private protected static ITensor DecayRates(WeightLoader loader, IBackend backend, string name, int length) =>
        backend.UploadVector(loader.Floats(name, length).Select(v => -MathF.Exp(v)).ToArray());

    /// <summary>The convolution weight [channels, 1, kernel] as a vector of channels·kernel floats.</summary>
    private protected static ITensor ConvWeight(WeightLoader loader, IBackend backend, string name, int channels, int kernel) =>
        backend.UploadVector(loader.Floats(name, [channels, 1, kernel]));

    /// <summary>The activation of the convolution and gate: the shaders apply SiLU.</summary>
    private protected static void RequireSilu(ConfigSection raw)
    {
        string act = raw.String("hidden_act", "silu");
        if (act is not ("silu" or "swish"))
            throw new NotSupportedException($"config.json: hidden_act '{act}' is not supported (Mamba models use silu)");
    }
}
