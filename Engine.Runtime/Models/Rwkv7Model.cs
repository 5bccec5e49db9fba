using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// RWKV-7 (x070, "Goose") in the layout of BlinkDL's checkpoints, following RWKV-LM's rwkv_v7_numpy.py: static
/// token-shift mixes, LoRA decay w = exp(-e^-0.5 · sigmoid(w0 + LoRA(x))), in-context learning rate a, the
/// generalized delta rule S = S·diag(w) - (S kk)(kk·a)ᵀ + v kᵀ per head, a value residual to layer 0's values
/// (layers after the first), group norm ln_x, the r·k·r_k bonus and a LoRA sigmoid gate. Layer 0's unused
/// v0/v1/v2 (present in models trained with RWKV-LM, absent from released checkpoints) are ignored.
/// Shapes: H heads of S (A = H·S); Lw, La, Lv, Lg = LoRA ranks.
/// </summary>
public sealed class Rwkv7Model : RwkvModel
{
    private sealed record Lora(IWeightMatrix Down, IWeightMatrix Up, ITensor? Bias); // [r, D], [A, r], [A]

    private sealed record Layer(
        ITensor Mixes,                 // [6D] x_r, x_w, x_k, x_v, x_a, x_g
        Lora Decay, Lora Rate, Lora Gate, Lora? ValueResidual,
        ITensor KeyNormScale,          // [A] k_k
        ITensor KeyRateScale,          // [A] k_a
        ITensor KeyRateOffset,         // [A] 1 - k_a: k·(1 + (a - 1)·k_a) = k·(a·k_a + 1 - k_a)
        IWeightMatrix Bonus,           // [H, A]: row h holds r_k[h] over head h's channels
        IWeightMatrix Receptance, IWeightMatrix Key, IWeightMatrix Value, // [A, D]
        IWeightMatrix Output,          // [D, A]
        ITensor GroupNormWeight, ITensor GroupNormBias); // [A]

    /// <summary>RWKV-7's decay scale, exactly e^-0.5 as the reference writes it (1 / e^0.5).</summary>
    private static readonly float DecayScale = (float)-Math.Exp(-0.5);

    private readonly Layer[] _layers;
    private readonly int _heads, _headSize, _attention, _maxRank;
    private readonly float _groupNormEps;
    private readonly IWeightMatrix _expand;  // [A, H]: copies a head's value to each of its channels
    private readonly ITensor _unitNorm, _minusOne, _decayScale;
    private readonly ITensor _lora, _r, _w, _k, _v, _a, _b, _g, _kk, _t, _y, _valueFirst, _mixedValue, _headSums;
    private readonly ITensor[] _inputs;  // [B·D] each: the inputs of r, w, k, v, a, g

    public Rwkv7Model(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options)
        : base(config, tensors, backend, options, "", "emb.weight", "ln0", FeedForwardSizeOf(config, tensors, "blocks.0.ffn.key.weight"))
    {
        // Heads and head size from the config, else from r_k [H, S].
        _heads = Loader.Size(config.HeadCount, "blocks.0.att.r_k", 0);
        _headSize = Loader.Size(config.HeadDim, "blocks.0.att.r_k", 1);
        _attention = _heads * _headSize;
        _groupNormEps = (float)Raw.Double("group_norm_epsilon", 64e-5);

        Lora LoadLora(string a, string name, string rankField, bool withBias)
        {
            int rank = Rank(rankField, a + name + "1");
            return new Lora(TransposedMatrix(a + name + "1", rank, Dim), TransposedMatrix(a + name + "2", _attention, rank),
                withBias ? Loader.Vector(a + name + "0", _attention) : null);
        }

        _layers = new Layer[LayerCount];
        for (int i = 0; i < LayerCount; i++)
        {
            string a = Block("", i) + "att.", f = Block("", i) + "ffn.";
            float[] keyRate = Loader.Floats(a + "k_a", _attention);
            _layers[i] = new Layer(
                Vectors(a + "x_r", a + "x_w", a + "x_k", a + "x_v", a + "x_a", a + "x_g"),
                LoadLora(a, "w", "d_decay_lora", true), LoadLora(a, "a", "d_aaa_lora", true), LoadLora(a, "g", "d_gate_lora", false),
                i > 0 ? LoadLora(a, "v", "d_mv_lora", true) : null,
                Loader.Vector(a + "k_k", _attention),
                backend.UploadVector(keyRate),
                backend.UploadVector(keyRate.Select(v => 1 - v).ToArray()),
                BonusMatrix(Loader.Floats(a + "r_k", _attention), a + "r_k"),
                Loader.Matrix(a + "receptance.weight", _attention, Dim),
                Loader.Matrix(a + "key.weight", _attention, Dim),
                Loader.Matrix(a + "value.weight", _attention, Dim),
                Loader.Matrix(a + "output.weight", Dim, _attention),
                Loader.Vector(a + "ln_x.weight", _attention),
                Loader.Vector(a + "ln_x.bias", _attention));
            FeedForwards[i] = new FeedForward(Vectors(f + "x_k"),
                Loader.Matrix(f + "key.weight", FeedForwardSize, Dim), Loader.Matrix(f + "value.weight", Dim, FeedForwardSize), null);
        }

        _maxRank = _layers.SelectMany(l => new[] { l.Decay, l.Rate, l.Gate, l.ValueResidual }).OfType<Lora>().Max(x => x.Down.Rows);
        var expand = new float[_attention * _heads];
        for (int c = 0; c < _attention; c++) expand[c * _heads + c / _headSize] = 1;
        _expand = FloatMatrix("rwkv7.head_expand", _attention, _heads, expand);
        // RmsNorm with weight 1/√S over a head is x / ‖x‖ (the reference's L2 normalisation of kk).
        _unitNorm = backend.UploadVector(Enumerable.Repeat(1 / MathF.Sqrt(_headSize), _headSize).ToArray());
        _minusOne = backend.UploadVector([-1f]);
        _decayScale = backend.UploadVector([DecayScale]);

        int b = MaxBatch, n = b * _attention;
        _lora = backend.Allocate(b * _maxRank);
        _inputs = Enumerable.Range(0, 6).Select(_ => backend.Allocate(b * Dim)).ToArray();
        (_r, _w, _k, _v, _a, _b, _g) = (backend.Allocate(n), backend.Allocate(n), backend.Allocate(n), backend.Allocate(n),
            backend.Allocate(n), backend.Allocate(n), backend.Allocate(n));
        (_kk, _t, _y, _valueFirst, _mixedValue) = (backend.Allocate(n), backend.Allocate(n), backend.Allocate(n), backend.Allocate(n), backend.Allocate(n));
        _headSums = backend.Allocate(b * _heads);
    }

    /// <summary>[H, A] with r_k on head h's channels of row h: one Linear sums r·k·r_k per head.</summary>
    private IWeightMatrix BonusMatrix(float[] bonus, string name)
    {
        var values = new float[_heads * _attention];
        for (int c = 0; c < _attention; c++) values[(c / _headSize) * _attention + c] = bonus[c];
        return FloatMatrix(name, _heads, _attention, values);
    }

    protected override float[] InitialWkvState() => new float[_heads * _headSize * _headSize];

    protected override IEnumerable<IWeightMatrix> TimeMixMatrices() =>
        _layers.SelectMany(l => new[] { l.Decay, l.Rate, l.Gate, l.ValueResidual }.OfType<Lora>().SelectMany(x => new[] { x.Down, x.Up })
            .Concat([l.Bonus, l.Receptance, l.Key, l.Value, l.Output])).Append(_expand);

    protected override void TimeMix(int layer, RwkvState state, int n)
    {
        var be = Backend;
        var l = _layers[layer];
        int count = n * _attention;

        // y = Up f(Down x) + bias, the LoRA shape every data-dependent vector has (the bias added by the product).
        void LowRank(Lora lora, ITensor input, Activation? inner, ITensor output)
        {
            be.Linear(lora.Down, null, input, _lora, n);
            if (inner is { } f) be.Activate(f, _lora, _lora, n * lora.Down.Rows);
            be.Linear(lora.Up, lora.Bias, _lora, output, n);
        }

        // The token shift and all six interpolations (r, w, k, v, a, g) in one op.
        ShiftMix(state.TimeShift[layer], l.Mixes, null, _inputs, n);
        be.Linear(l.Receptance, null, _inputs[0], _r, n);
        LowRank(l.Decay, _inputs[1], Activation.Tanh, _w);
        be.Activate(Activation.Sigmoid, _w, _w, count);
        be.Binary(BinaryOp.Mul, _w, _decayScale, _w, count, 1);
        be.Activate(Activation.Exp, _w, _w, count);
        be.Linear(l.Key, null, _inputs[2], _k, n);
        ITensor v;
        if (l.ValueResidual is null)
        {
            // Layer 0's values are the v_first of the later layers.
            be.Linear(l.Value, null, _inputs[3], _valueFirst, n);
            v = _valueFirst;
        }
        else
        {
            // v + (v_first - v) · sigmoid(LoRA(x_v)): the interpolation of a token shift of one row of all the batch's
            // values whose carried row is v_first (the same subtraction, product and sum).
            be.Linear(l.Value, null, _inputs[3], _v, n);
            LowRank(l.ValueResidual, _inputs[3], null, _t);
            be.Activate(Activation.Sigmoid, _t, _t, count);
            be.TokenShiftMix(_v, _valueFirst, _t, null, [_mixedValue], 1, count, updateState: false);
            v = _mixedValue;
        }
        LowRank(l.Rate, _inputs[4], null, _a);
        be.Activate(Activation.Sigmoid, _a, _a, count);
        LowRank(l.Gate, _inputs[5], Activation.Sigmoid, _g);

        be.Binary(BinaryOp.Mul, _k, l.KeyNormScale, _kk, count, _attention);
        be.Binary(BinaryOp.Mul, _a, l.KeyRateScale, _t, count, _attention);
        be.Binary(BinaryOp.Add, _t, l.KeyRateOffset, _t, count, _attention);
        be.Binary(BinaryOp.Mul, _k, _t, _k, count, count);
        be.RmsNorm(_kk, _unitNorm, _kk, n * _heads, _headSize, 1e-24f / _headSize);
        be.Binary(BinaryOp.Mul, _kk, _a, _b, count, count);
        be.Binary(BinaryOp.Mul, _kk, _minusOne, _kk, count, 1);
        be.Wkv7(_r, _w, _k, v, _kk, _b, state.Wkv[layer], _y, n, _heads, _headSize);
        be.LayerNorm(_y, l.GroupNormWeight, l.GroupNormBias, _y, n * _heads, _headSize, _groupNormEps);

        // y += (Σ_head r·k·r_k) · v, then the gate.
        be.Binary(BinaryOp.Mul, _r, _k, _t, count, count);
        be.Linear(l.Bonus, null, _t, _headSums, n);
        be.Linear(_expand, null, _headSums, _t, n);
        be.Binary(BinaryOp.Mul, _t, v, _t, count, count);
        be.Add(_y, _t, _y, count);
        be.Binary(BinaryOp.Mul, _y, _g, _y, count, count);
        AddProduct(layer, l.Output, _y, n);
    }
}
