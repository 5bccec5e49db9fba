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
    private readonly IWeightMatrix _embedding;   // [V, D]
    private readonly IWeightMatrix _head;        // [V, D], the embedding when tied
    private readonly ITensor[] _blockNorms;      // [layers][D]
    private readonly ITensor _x;
    private readonly OutputHead _output;

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
        MaxContext = options.MaxContext ?? ModelOptions.RecurrentMaxContext;
        if (MaxContext <= 0) throw new InvalidDataException($"context length {MaxContext} is not positive");
        MaxBatch = Math.Clamp(options.MaxBatch, 1, MaxContext);

        _embedding = loader.Matrix("backbone.embeddings.weight", Vocab, Dim);
        _head = loader.Has("lm_head.weight") ? loader.Matrix("lm_head.weight", Vocab, Dim) : _embedding;
        var finalNorm = loader.Vector("backbone.norm_f.weight", Dim);
        _blockNorms = Enumerable.Range(0, config.LayerCount).Select(i => loader.Vector($"backbone.layers.{i}.norm.weight", Dim)).ToArray();
        _x = backend.Allocate(MaxBatch * Dim);
        Normed = backend.Allocate(MaxBatch * Dim);
        _output = new OutputHead(backend, _head, _x, Normed, ProductFusion.RmsNormed(finalNorm, Eps),
            Dim, Vocab, MaxBatch, MaxContext);
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
        _output.Forward(mamba.Position, tokens, logits, allPositions, batch =>
        {
            var be = Backend;
            int count = batch.Length;
            be.Embedding(_embedding, batch, _x);
            for (int i = 0; i < _blockNorms.Length; i++)
            {
                be.RmsNorm(_x, _blockNorms[i], Normed, count, Dim, Eps);
                Mixer(i, mamba, count);
                be.Add(_x, Normed, _x, count * Dim);
            }
            mamba.Position += count;
        });
    }

    public void Dispose() => Backend.Dispose();

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
