using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// RWKV-4 as Hugging Face's RwkvForCausalLM stores it (model_type "rwkv"): time mixing with per-channel decay and
/// bonus (WKV in the stable max-tracking form of rwkv_linear_attention_cpu), receptance-gated channel mixing, and
/// in inference the halving of the hidden state every rescale_every blocks (with block i's output projections
/// scaled by 2^-(i / rescale_every)) as transformers does. Shapes: A = attention size (attention_hidden_size).
/// </summary>
public sealed class Rwkv4Model : RwkvModel
{
    private sealed record Layer(
        ITensor Mixes,                                             // [3D] key, value, receptance as 1 - time_mix: x + shift·(1 - mix)
        ITensor Decay, ITensor First,                              // [A]: -exp(time_decay), time_first
        IWeightMatrix Key, IWeightMatrix Value, IWeightMatrix Receptance, // [A, D]
        IWeightMatrix Output,                                      // [D, A]
        ITensor? Scale);                                           // [1] when rescaled

    /// <summary>transformers' RwkvConfig default.</summary>
    private const int DefaultRescaleEvery = 6;

    private readonly Layer[] _layers;
    private readonly int _attention, _rescaleEvery;
    private readonly ITensor _half;
    private readonly ITensor _k, _v, _r, _wkv;
    private readonly ITensor[] _mixed;   // [B·D] each: the key, value and receptance inputs

    public Rwkv4Model(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options)
        : base(config, tensors, backend, options, "rwkv.", "rwkv.embeddings.weight", "pre_ln",
            FeedForwardSizeOf(config, tensors, "rwkv.blocks.0.feed_forward.key.weight"))
    {
        _attention = Raw.Int("attention_hidden_size", Dim);
        _rescaleEvery = Raw.Int("rescale_every", DefaultRescaleEvery);
        if (_attention <= 0) throw new InvalidDataException($"attention_hidden_size {_attention} is not positive");

        ITensor Complement(params string[] names) =>
            backend.UploadVector(names.SelectMany(name => Loader.Floats(name, Dim)).Select(m => 1 - m).ToArray());

        _layers = new Layer[LayerCount];
        for (int i = 0; i < LayerCount; i++)
        {
            string p = Block("rwkv.", i), a = p + "attention.", f = p + "feed_forward.";
            int halvings = _rescaleEvery > 0 ? i / _rescaleEvery : 0;
            _layers[i] = new Layer(
                Complement(a + "time_mix_key", a + "time_mix_value", a + "time_mix_receptance"),
                backend.UploadVector(Loader.Floats(a + "time_decay", _attention).Select(w => -MathF.Exp(w)).ToArray()),
                Loader.Vector(a + "time_first", _attention),
                Loader.Matrix(a + "key.weight", _attention, Dim),
                Loader.Matrix(a + "value.weight", _attention, Dim),
                Loader.Matrix(a + "receptance.weight", _attention, Dim),
                Loader.Matrix(a + "output.weight", Dim, _attention),
                halvings > 0 ? backend.UploadVector([MathF.ScaleB(1f, -halvings)]) : null);
            FeedForwards[i] = new FeedForward(
                Complement(f + "time_mix_key", f + "time_mix_receptance"),
                Loader.Matrix(f + "key.weight", FeedForwardSize, Dim), Loader.Matrix(f + "value.weight", Dim, FeedForwardSize),
                Loader.Matrix(f + "receptance.weight", Dim, Dim));
        }
        _half = backend.UploadVector([0.5f]);
        int b = MaxBatch * _attention;
        (_k, _v, _r, _wkv) = (backend.Allocate(b), backend.Allocate(b), backend.Allocate(b), backend.Allocate(b));
        _mixed = [backend.Allocate(MaxBatch * Dim), backend.Allocate(MaxBatch * Dim), backend.Allocate(MaxBatch * Dim)];
    }

    protected override float[] InitialWkvState()
    {
        // [num | den | max]: an empty history has max = -1e38, so its terms vanish next to the first token's.
        var state = new float[3 * _attention];
        state.AsSpan(2 * _attention).Fill(-1e38f);
        return state;
    }

    protected override IEnumerable<IWeightMatrix> TimeMixMatrices() =>
        _layers.SelectMany(l => new[] { l.Key, l.Value, l.Receptance, l.Output });

    protected override ITensor? BranchScale(int layer) => _layers[layer].Scale;

    protected override void TimeMix(int layer, RwkvState state, int n)
    {
        var be = Backend;
        var l = _layers[layer];
        ShiftMix(state.TimeShift[layer], l.Mixes, null, _mixed, n);
        be.Linear(l.Key, null, _mixed[0], _k, n);
        be.Linear(l.Value, null, _mixed[1], _v, n);
        be.Linear(l.Receptance, null, _mixed[2], _r, n);
        be.Activate(Activation.Sigmoid, _r, _r, n * _attention);
        be.Wkv4(l.Decay, l.First, _k, _v, state.Wkv[layer], _wkv, n, _attention);
        be.Binary(BinaryOp.Mul, _r, _wkv, _r, n * _attention, n * _attention);
        AddProduct(layer, l.Output, _r, n);
    }

    protected override void AfterBlock(int layer, int n)
    {
        if (_rescaleEvery > 0 && (layer + 1) % _rescaleEvery == 0)
            Backend.Binary(BinaryOp.Mul, X, _half, X, n * Dim, 1);
    }
}
