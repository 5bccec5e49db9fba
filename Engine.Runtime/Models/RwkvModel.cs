using System.Runtime.InteropServices;
using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// What RWKV-4, -6 and -7 share: embedding and its first layer norm, per block x += TimeMix(ln1(x)) and
/// x += ChannelMix(ln2(x)), the output layer norm and head, the token shift, and the recurrent state. A version
/// supplies its time mixing, its channel-mix weights and the shape of its WKV state. Token shifts and their
/// interpolations are one <see cref="IBackend.TokenShiftMix"/> each, and branch outputs are accumulated into the hidden
/// state by their product where no scale intervenes.
/// Shapes: D = hidden size, F = channel-mix size, V = vocab, B = batch tokens.
/// </summary>
public abstract class RwkvModel : ILanguageModel
{
    /// <summary>
    /// Channel mixing: r = sigmoid(Receptance xr) when present, out = r · Value relu(Key xk)². <paramref name="Mixes"/>
    /// holds the key's mix [D], then the receptance's [D] when there is a receptance.
    /// </summary>
    protected sealed record FeedForward(ITensor Mixes, IWeightMatrix Key, IWeightMatrix Value, IWeightMatrix? Receptance);

    private sealed record Norm(ITensor Weight, ITensor Bias);

    private readonly IWeightMatrix _embedding;   // [V, D]
    private readonly IWeightMatrix _head;        // [V, D]
    private readonly Norm _firstNorm, _outputNorm;
    private readonly Norm[] _timeNorms, _channelNorms;
    private readonly int _vocab;
    private readonly OutputHead _output;
    private float[]? _initialWkv;

    protected int Dim { get; }
    protected int FeedForwardSize { get; }
    protected int LayerCount { get; }
    protected int MaxBatch { get; }
    protected float Eps { get; }
    private protected WeightLoader Loader { get; }

    /// <summary>Channel-mix weights of each layer, loaded by the version's constructor.</summary>
    protected FeedForward[] FeedForwards { get; }

    // Activations, allocated once for the largest batch: the hidden state, a block's normed input, the branch output,
    // scratch, and the channel mix's receptance input, hidden layer and receptance.
    protected ITensor X { get; }
    protected ITensor Normed { get; }
    protected ITensor Branch { get; }
    protected ITensor Scratch { get; }
    private readonly ITensor _ffnMixed, _ffnHidden, _ffnReceptance;

    public ModelConfig Config { get; }
    public IBackend Backend { get; }
    public int MaxContext { get; }

    public long WeightBytesPerToken => MatricesReadPerToken().Sum(m => m.ByteSize);

    public string WeightFormats =>
        string.Join("+", MatricesReadPerToken().Prepend(_embedding).Select(m => WeightTypes.Get(m.Type).Name).Distinct());

    /// <param name="prefix">Prefix of every name but the head's ("rwkv." in Hugging Face files).</param>
    /// <param name="embedding">Name of the embedding table.</param>
    /// <param name="firstNorm">Name of block 0's extra layer norm before the first block, without ".weight".</param>
    /// <param name="feedForwardSize">F, the channel-mix hidden size.</param>
    protected RwkvModel(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options,
        string prefix, string embedding, string firstNorm, int feedForwardSize)
    {
        Config = config;
        Backend = backend;
        Dim = config.HiddenSize;
        LayerCount = config.LayerCount;
        _vocab = config.VocabSize;
        Eps = (float)config.RmsNormEps;
        MaxContext = options.MaxContext ?? ModelOptions.RecurrentMaxContext;
        if (MaxContext <= 0) throw new InvalidDataException($"context length {MaxContext} is not positive");
        MaxBatch = Math.Clamp(options.MaxBatch, 1, MaxContext);
        Loader = new WeightLoader(tensors, backend);

        _embedding = Loader.Matrix(embedding, _vocab, Dim);
        _head = Loader.Matrix("head.weight", _vocab, Dim);
        Norm LayerNorm(string name) => new(Loader.Vector(name + ".weight", Dim), Loader.Vector(name + ".bias", Dim));
        _firstNorm = LayerNorm(Block(prefix, 0) + firstNorm);
        _outputNorm = LayerNorm(prefix + "ln_out");
        _timeNorms = Enumerable.Range(0, LayerCount).Select(i => LayerNorm(Block(prefix, i) + "ln1")).ToArray();
        _channelNorms = Enumerable.Range(0, LayerCount).Select(i => LayerNorm(Block(prefix, i) + "ln2")).ToArray();
        FeedForwards = new FeedForward[LayerCount];

        FeedForwardSize = feedForwardSize > 0 ? feedForwardSize
            : throw new InvalidDataException($"channel-mix size {feedForwardSize} is not positive");
        int b = MaxBatch;
        X = backend.Allocate(b * Dim);
        Normed = backend.Allocate(b * Dim);
        Branch = backend.Allocate(b * Dim);
        Scratch = backend.Allocate(b * Dim);
        _ffnMixed = backend.Allocate(b * Dim);
        _ffnHidden = backend.Allocate(b * FeedForwardSize);
        _ffnReceptance = backend.Allocate(b * Dim);
        _output = new OutputHead(backend, _head, X, Normed,
            (t, rows) => backend.LayerNorm(t, _outputNorm.Weight, _outputNorm.Bias, t, rows, Dim, Eps), Dim, _vocab, b, MaxContext);
    }

    protected static string Block(string prefix, int layer) => $"{prefix}blocks.{layer}.";

    /// <summary>F from the config, else the rows of block 0's channel-mix key.</summary>
    protected static int FeedForwardSizeOf(ModelConfig config, ITensorSource tensors, string key) =>
        config.IntermediateSize > 0 ? config.IntermediateSize : (int)tensors.Require(key).Rows;

    /// <summary>
    /// Adds the time-mixing output of batch rows [0, n) of <see cref="Normed"/> to <see cref="X"/> (with
    /// <see cref="AddProduct"/>), carrying <paramref name="state"/>'s token shift (<see cref="ShiftMix"/>, updated by its
    /// last call) and WKV state of the layer.
    /// </summary>
    protected abstract void TimeMix(int layer, RwkvState state, int n);

    /// <summary>The WKV state of one layer as a fresh sequence starts.</summary>
    protected abstract float[] InitialWkvState();

    /// <summary>Every matrix of the time mixing a decoded token reads.</summary>
    protected abstract IEnumerable<IWeightMatrix> TimeMixMatrices();

    /// <summary>A one-element factor both branches of block <paramref name="layer"/> are scaled by before they are added, or null.</summary>
    protected virtual ITensor? BranchScale(int layer) => null;

    /// <summary>Runs after block <paramref name="layer"/> has added both branches to <see cref="X"/>.</summary>
    protected virtual void AfterBlock(int layer, int n)
    {
    }

    private IEnumerable<IWeightMatrix> MatricesReadPerToken() =>
        TimeMixMatrices()
            .Concat(FeedForwards.SelectMany(f => new[] { f.Key, f.Value, f.Receptance }.OfType<IWeightMatrix>()))
            .Prepend(_head);

    public IModelState CreateState() => new RwkvState(Backend, LayerCount, Dim, _initialWkv ??= InitialWkvState());

    public void Forward(IModelState state, ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions)
    {
        var rwkv = state as RwkvState ?? throw new ArgumentException("the state was made by another model", nameof(state));
        _output.Forward(rwkv.Position, tokens, logits, allPositions, batch =>
        {
            Blocks(rwkv, batch);
            rwkv.Position += batch.Length;
        });
    }

    public void Dispose() => Backend.Dispose();

    private void Blocks(RwkvState state, ReadOnlySpan<int> tokens)
    {
        var be = Backend;
        int n = tokens.Length;
        be.Embedding(_embedding, tokens, X);
        be.LayerNorm(X, _firstNorm.Weight, _firstNorm.Bias, X, n, Dim, Eps);
        for (int i = 0; i < LayerCount; i++)
        {
            be.LayerNorm(X, _timeNorms[i].Weight, _timeNorms[i].Bias, Normed, n, Dim, Eps);
            TimeMix(i, state, n);

            be.LayerNorm(X, _channelNorms[i].Weight, _channelNorms[i].Bias, Normed, n, Dim, Eps);
            ChannelMix(i, state.ChannelShift[i], n);
            AfterBlock(i, n);
        }
    }

    /// <summary>X += <see cref="Branch"/> (scaled by the layer's <see cref="BranchScale"/> first) for batch rows [0, n).</summary>
    private void AddBranch(int layer, int n)
    {
        if (BranchScale(layer) is { } scale) Backend.Binary(BinaryOp.Mul, Branch, scale, Branch, n * Dim, 1);
        Backend.Add(X, Branch, X, n * Dim);
    }

    /// <summary>
    /// X += (<paramref name="output"/> · <paramref name="input"/>) for batch rows [0, n): one accumulating product, or
    /// where the layer's branch is scaled, the product into <see cref="Branch"/>, the scale and the add.
    /// </summary>
    protected void AddProduct(int layer, IWeightMatrix output, ITensor input, int n)
    {
        if (BranchScale(layer) is null)
        {
            Backend.Linear(output, null, input, X, n, new ProductFusion { Accumulate = true });
            return;
        }
        Backend.Linear(output, null, input, Branch, n);
        AddBranch(layer, n);
    }

    /// <summary>
    /// The token shift of batch rows [0, n) of <see cref="Normed"/> and its interpolations, one dispatch: output i =
    /// Normed + (previous row - Normed) · mix i, mix i = <paramref name="mixes"/>[i·D ..] (+ <paramref name="tokenMixes"/>
    /// [t][i][D], per token), row 0's previous row being the one <paramref name="last"/> kept from the last call; then,
    /// when <paramref name="updateState"/>, <paramref name="last"/> keeps the batch's last row.
    /// </summary>
    protected void ShiftMix(ITensor last, ITensor mixes, ITensor? tokenMixes, ReadOnlySpan<ITensor> outputs, int n, bool updateState = true) =>
        Backend.TokenShiftMix(Normed, last, mixes, tokenMixes, outputs, n, Dim, updateState);

    private void ChannelMix(int layer, ITensor last, int n)
    {
        var be = Backend;
        var ffn = FeedForwards[layer];
        int f = ffn.Key.Rows;
        if (ffn.Receptance is null)
        {
            ShiftMix(last, ffn.Mixes, null, [Scratch], n);
            be.Linear(ffn.Key, null, Scratch, _ffnHidden, n);
            be.Activate(Activation.ReluSquared, _ffnHidden, _ffnHidden, n * f);
            AddProduct(layer, ffn.Value, _ffnHidden, n);
            return;
        }
        ShiftMix(last, ffn.Mixes, null, [Scratch, _ffnMixed], n);
        be.Linear(ffn.Key, null, Scratch, _ffnHidden, n);
        be.Activate(Activation.ReluSquared, _ffnHidden, _ffnHidden, n * f);
        be.Linear(ffn.Value, null, _ffnHidden, Branch, n);
        be.Linear(ffn.Receptance, null, _ffnMixed, _ffnReceptance, n);
        be.Activate(Activation.Sigmoid, _ffnReceptance, _ffnReceptance, n * Dim);
        be.Binary(BinaryOp.Mul, Branch, _ffnReceptance, Branch, n * Dim, n * Dim);
        AddBranch(layer, n);
    }

    /// <summary>Uploads the vectors <paramref name="names"/> (each [D]) one after another, as one tensor.</summary>
    protected ITensor Vectors(params string[] names) => Backend.UploadVector(names.SelectMany(name => Loader.Floats(name, Dim)).ToArray());

    /// <summary>
    /// A matrix stored the way it is applied as x @ W ([<paramref name="columns"/>, <paramref name="rows"/>], RWKV's LoRA
    /// factors), uploaded as float32 [rows, columns] for <see cref="IBackend.Linear"/>.
    /// </summary>
    protected IWeightMatrix TransposedMatrix(string name, int rows, int columns)
    {
        float[] stored = Loader.Floats(name, [columns, rows]);
        var values = new float[stored.Length];
        for (int c = 0; c < columns; c++)
            for (int r = 0; r < rows; r++)
                values[r * columns + c] = stored[c * rows + r];
        return FloatMatrix(name, rows, columns, values);
    }

    /// <summary>Uploads host floats [rows, columns] as a float32 matrix.</summary>
    protected IWeightMatrix FloatMatrix(string name, int rows, int columns, float[] values) =>
        Backend.UploadMatrix(new TensorInfo(name, [rows, columns], WeightType.F32), MemoryMarshal.AsBytes(values.AsSpan()));

    /// <summary>The fields of config.json that the common config does not carry.</summary>
    private protected ConfigSection Raw => ConfigSection.Root(Config);

    /// <summary>The rank of a LoRA factor [D, r] stored as x @ W: the config's <paramref name="field"/>, else its second dimension.</summary>
    protected int Rank(string field, string name) => Loader.Size(Raw.Int(field, 0), name, 1);
}

/// <summary>
/// The recurrent state of an RWKV model, per layer: the time-mix token shift [D] (last normed input), the WKV state
/// and the channel-mix token shift [D]. Reset writes the initial values back.
/// </summary>
public sealed class RwkvState : IModelState
{
    private readonly IBackend _backend;
    private readonly float[] _zeros;
    private readonly float[] _initialWkv;

    public ITensor[] TimeShift { get; }
    public ITensor[] Wkv { get; }
    public ITensor[] ChannelShift { get; }
    public int Position { get; internal set; }

    internal RwkvState(IBackend backend, int layers, int dim, float[] initialWkv)
    {
        _backend = backend;
        _zeros = new float[dim];
        _initialWkv = initialWkv;
        TimeShift = Enumerable.Range(0, layers).Select(_ => backend.Allocate(dim)).ToArray();
        Wkv = Enumerable.Range(0, layers).Select(_ => backend.Allocate(initialWkv.Length)).ToArray();
        ChannelShift = Enumerable.Range(0, layers).Select(_ => backend.Allocate(dim)).ToArray();
        Reset();
    }

    public void Reset()
    {
        for (int i = 0; i < Wkv.Length; i++)
        {
            _backend.Write(TimeShift[i], 0, _zeros);
            _backend.Write(Wkv[i], 0, _initialWkv);
            _backend.Write(ChannelShift[i], 0, _zeros);
        }
        Position = 0;
    }
}
