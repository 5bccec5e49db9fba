using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// RWKV-6 (x060, "Finch") in the layout of BlinkDL's checkpoints, following ChatRWKV's RWKV_v6_demo.py: token-shift
/// mixes made data-dependent by a LoRA (time_maa_w1/w2), a per-token decay w = exp(-exp(time_decay + LoRA(x))),
/// per-head matrix state with bonus time_faaaa, group norm ln_x (eps group_norm_epsilon) and a SiLU gate.
/// Shapes: H heads of S (A = H·S), L = mix LoRA rank, Lw = decay LoRA rank.
/// </summary>
public sealed class Rwkv6Model : RwkvModel
{
    /// <summary>The five data-dependent mixes, in the order of time_maa_w2's first dimension.</summary>
    private static readonly string[] MixNames = ["w", "k", "v", "r", "g"];

    private sealed record Layer(
        ITensor MixX,                  // [D] time_maa_x
        ITensor MixBias,               // [5D] time_maa_{w,k,v,r,g}
        IWeightMatrix MixDown,         // [5L, D] time_maa_w1ᵀ
        IWeightMatrix MixUp,           // [5D, 5L] block-diagonal from time_maa_w2 [5, L, D]
        ITensor DecayBias,             // [A] time_decay
        IWeightMatrix DecayDown,       // [Lw, D]
        IWeightMatrix DecayUp,         // [A, Lw]
        ITensor First,                 // [A] time_faaaa
        IWeightMatrix Receptance, IWeightMatrix Key, IWeightMatrix Value, IWeightMatrix Gate, // [A, D]
        IWeightMatrix Output,          // [D, A]
        ITensor GroupNormWeight, ITensor GroupNormBias); // [A]

    private readonly Layer[] _layers;
    private readonly int _heads, _headSize, _attention, _mixRank, _decayRank;
    private readonly float _groupNormEps;
    private readonly ITensor _minusOne;
    private readonly ITensor _lora, _mixes, _mixed, _r, _k, _v, _g, _w, _y;
    private readonly ITensor[] _inputs;  // [B·D] each: the inputs of w, k, v, r, g

    public Rwkv6Model(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options)
        : base(config, tensors, backend, options, "", "emb.weight", "ln0", FeedForwardSizeOf(config, tensors, "blocks.0.ffn.key.weight"))
    {
        // Heads and head size from the config, else from time_faaaa [H, S].
        _heads = Loader.Size(config.HeadCount, "blocks.0.att.time_faaaa", 0);
        _headSize = Loader.Size(config.HeadDim, "blocks.0.att.time_faaaa", 1);
        _attention = _heads * _headSize;
        _mixRank = Loader.Size(Raw.Int("d_mix_lora", 0) * MixNames.Length, "blocks.0.att.time_maa_w1", 1) / MixNames.Length;
        _decayRank = Rank("d_decay_lora", "blocks.0.att.time_decay_w1");
        // Training norms x / head_size_divisor with eps 1e-5: the same as x itself with eps 1e-5 · divisor².
        _groupNormEps = (float)Raw.Double("group_norm_epsilon", 1e-5 * Math.Pow(Raw.Double("head_size_divisor", 8), 2));

        _layers = new Layer[LayerCount];
        for (int i = 0; i < LayerCount; i++)
        {
            string a = Block("", i) + "att.", f = Block("", i) + "ffn.";
            float[] mixBias = MixNames.SelectMany(m => Loader.Floats(a + "time_maa_" + m, Dim)).ToArray();
            _layers[i] = new Layer(
                Loader.Vector(a + "time_maa_x", Dim),
                backend.UploadVector(mixBias),
                TransposedMatrix(a + "time_maa_w1", MixNames.Length * _mixRank, Dim),
                MixUp(a + "time_maa_w2"),
                Loader.Vector(a + "time_decay", _attention),
                TransposedMatrix(a + "time_decay_w1", _decayRank, Dim),
                TransposedMatrix(a + "time_decay_w2", _attention, _decayRank),
                Loader.Vector(a + "time_faaaa", _attention),
                Loader.Matrix(a + "receptance.weight", _attention, Dim),
                Loader.Matrix(a + "key.weight", _attention, Dim),
                Loader.Matrix(a + "value.weight", _attention, Dim),
                Loader.Matrix(a + "gate.weight", _attention, Dim),
                Loader.Matrix(a + "output.weight", Dim, _attention),
                Loader.Vector(a + "ln_x.weight", _attention),
                Loader.Vector(a + "ln_x.bias", _attention));
            FeedForwards[i] = new FeedForward(Vectors(f + "time_maa_k", f + "time_maa_r"),
                Loader.Matrix(f + "key.weight", FeedForwardSize, Dim), Loader.Matrix(f + "value.weight", Dim, FeedForwardSize),
                Loader.Matrix(f + "receptance.weight", Dim, Dim));
        }
        _minusOne = backend.UploadVector([-1f]);
        int b = MaxBatch;
        _lora = backend.Allocate(b * Math.Max(MixNames.Length * _mixRank, _decayRank));
        _mixes = backend.Allocate(b * MixNames.Length * Dim);
        _mixed = backend.Allocate(b * Dim);
        _inputs = MixNames.Select(_ => backend.Allocate(b * Dim)).ToArray();
        (_r, _k, _v, _g, _w, _y) = (backend.Allocate(b * _attention), backend.Allocate(b * _attention), backend.Allocate(b * _attention),
            backend.Allocate(b * _attention), backend.Allocate(b * _attention), backend.Allocate(b * _attention));
    }

    /// <summary>time_maa_w2 [5, L, D] as one block-diagonal matrix [5D, 5L], so one Linear gives all five mixes.</summary>
    private IWeightMatrix MixUp(string name)
    {
        int groups = MixNames.Length;
        float[] stored = Loader.Floats(name, [groups, _mixRank, Dim]);
        int columns = groups * _mixRank;
        var values = new float[groups * Dim * columns];
        for (int g = 0; g < groups; g++)
            for (int l = 0; l < _mixRank; l++)
                for (int d = 0; d < Dim; d++)
                    values[(g * Dim + d) * columns + g * _mixRank + l] = stored[(g * _mixRank + l) * Dim + d];
        return FloatMatrix(name, groups * Dim, columns, values);
    }

    protected override float[] InitialWkvState() => new float[_heads * _headSize * _headSize];

    protected override IEnumerable<IWeightMatrix> TimeMixMatrices() =>
        _layers.SelectMany(l => new[] { l.MixDown, l.MixUp, l.DecayDown, l.DecayUp, l.Receptance, l.Key, l.Value, l.Gate, l.Output });

    protected override void TimeMix(int layer, RwkvState state, int n)
    {
        var be = Backend;
        var l = _layers[layer];
        int groups = MixNames.Length;

        // Data-dependent mixes: maa_m + W2_m tanh(W1 (x + shift·maa_x)) for m in w, k, v, r, g; the state is kept for
        // the second token shift, which interpolates by all five at once and then updates it.
        var last = state.TimeShift[layer];
        ShiftMix(last, l.MixX, null, [_mixed], n, updateState: false);
        be.Linear(l.MixDown, null, _mixed, _lora, n);
        be.Activate(Activation.Tanh, _lora, _lora, n * groups * _mixRank);
        be.Linear(l.MixUp, null, _lora, _mixes, n);
        ShiftMix(last, l.MixBias, _mixes, _inputs, n);

        be.Linear(l.DecayDown, null, _inputs[0], _lora, n);
        be.Activate(Activation.Tanh, _lora, _lora, n * _decayRank);
        be.Linear(l.DecayUp, l.DecayBias, _lora, _w, n);
        be.Activate(Activation.Exp, _w, _w, n * _attention);
        be.Binary(BinaryOp.Mul, _w, _minusOne, _w, n * _attention, 1);
        be.Activate(Activation.Exp, _w, _w, n * _attention);
        be.Linear(l.Key, null, _inputs[1], _k, n);
        be.Linear(l.Value, null, _inputs[2], _v, n);
        be.Linear(l.Receptance, null, _inputs[3], _r, n);
        be.Linear(l.Gate, null, _inputs[4], _g, n);
        be.Activate(Activation.Silu, _g, _g, n * _attention);

        be.Wkv6(_r, _k, _v, _w, l.First, state.Wkv[layer], _y, n, _heads, _headSize);
        be.LayerNorm(_y, l.GroupNormWeight, l.GroupNormBias, _y, n * _heads, _headSize, _groupNormEps);
        be.Binary(BinaryOp.Mul, _y, _g, _y, n * _attention, n * _attention);
        AddProduct(layer, l.Output, _y, n);
    }
}
