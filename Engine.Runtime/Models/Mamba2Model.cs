using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// Mamba-2 (Hugging Face Mamba2ForCausalLM): one input projection gives the gate z, the convolved x·B·C and a step per
/// head; the scan has one decay rate per head, so a prompt runs the chunked state-space-duality form and a decoded
/// token the recurrent one; the gated output goes through an RMSNorm per group before the output projection.
/// Shapes: D = hidden, E = inner (expand·D) = H heads · P head dim, G groups, N = state size, K = conv kernel.
/// </summary>
public sealed class Mamba2Model : SsmModel
{
    private sealed class Layer
    {
        public required IWeightMatrix InProj { get; init; }   // [E + (E + 2GN) + H, D]: z, x·B·C, dt
        public required ITensor ConvWeight { get; init; }     // [E + 2GN][K]
        public ITensor? ConvBias { get; init; }               // [E + 2GN] (use_conv_bias)
        public ITensor? InBias { get; init; }                 // (use_bias)
        public ITensor? OutBias { get; init; }                // [D] (use_bias)
        public required ITensor Norm { get; init; }           // [E], G groups of E/G
        public required IWeightMatrix OutProj { get; init; }  // [D, E]
        public required SsmInputs Scan { get; init; }
    }

    private readonly Layer[] _layers;
    private readonly int _inner, _convChannels, _stateSize, _kernel, _groups, _chunk;

    private readonly ITensor _projected, _convolved, _scanned;
    private readonly RowView _convInput;   // x·B·C inside the projection

    protected override IEnumerable<IWeightMatrix> LayerMatrices => _layers.SelectMany(l => new[] { l.InProj, l.OutProj });

    protected override (int Conv, int Ssm) StateLengths => (_convChannels * (_kernel - 1), _inner * _stateSize);

    public Mamba2Model(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options)
        : this(config, tensors, backend, options, new WeightLoader(tensors, backend))
    {
    }

    private Mamba2Model(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options, WeightLoader loader)
        : base(config, tensors, backend, options, loader)
    {
        var raw = ConfigSection.Root(config);
        RequireSilu(raw);
        bool bias = raw.Bool("use_bias", false), convBias = raw.Bool("use_conv_bias", true);
        _inner = (int)(raw.Double("expand", 2) * Dim);
        int heads = raw.Positive("num_heads");
        int headDim = raw.Positive("head_dim", 64);
        _stateSize = raw.Positive("state_size", 128);
        _groups = raw.Positive("n_groups", 1);
        _kernel = raw.Positive("conv_kernel", 4);
        _chunk = raw.Positive("chunk_size", 256);
        var (dtMin, dtMax) = raw.Range("time_step_limit", (0.0, double.PositiveInfinity));
        if (heads * headDim != _inner)
            throw new InvalidDataException($"config.json: {heads} heads of {headDim} do not make the inner size {_inner} (expand × hidden_size)");
        if (heads % _groups != 0)
            throw new InvalidDataException($"config.json: {heads} heads do not split into n_groups {_groups}");
        if (_kernel < 2) throw new InvalidDataException($"config.json: conv_kernel {_kernel} is below 2");
        if (!(dtMin <= dtMax) || dtMin < 0)
            throw new InvalidDataException($"config.json: time_step_limit [{dtMin}, {dtMax}] is not a range of non-negative steps");
        int groupState = _groups * _stateSize;
        _convChannels = _inner + 2 * groupState;
        int projection = _inner + _convChannels + heads;

        int b = MaxBatch;
        _projected = backend.Allocate(b * projection);
        _convolved = backend.Allocate(b * _convChannels);
        _scanned = backend.Allocate(b * _inner);
        _convInput = new RowView(_projected, _inner, projection);

        _layers = new Layer[config.LayerCount];
        for (int i = 0; i < _layers.Length; i++)
        {
            string p = $"backbone.layers.{i}.mixer.";
            _layers[i] = new Layer
            {
                InProj = loader.Matrix(p + "in_proj.weight", projection, Dim),
                ConvWeight = ConvWeight(loader, backend, p + "conv1d.weight", _convChannels, _kernel),
                ConvBias = convBias ? loader.Vector(p + "conv1d.bias", _convChannels) : null,
                InBias = bias ? loader.Vector(p + "in_proj.bias", projection) : null,
                OutBias = bias ? loader.Vector(p + "out_proj.bias", Dim) : null,
                Norm = loader.Vector(p + "norm.weight", _inner),
                OutProj = loader.Matrix(p + "out_proj.weight", Dim, _inner),
                Scan = new SsmInputs(
                    X: RowView.Dense(_convolved, _convChannels),
                    Dt: new RowView(_projected, _inner + _convChannels, projection),
                    B: new RowView(_convolved, _inner, _convChannels),
                    C: new RowView(_convolved, _inner + groupState, _convChannels),
                    Z: new RowView(_projected, 0, projection),
                    DtBias: loader.Vector(p + "dt_bias", heads),
                    A: DecayRates(loader, backend, p + "A_log", heads),
                    D: loader.Vector(p + "D", heads),
                    Heads: heads, HeadDim: headDim, StateSize: _stateSize, Groups: _groups, DtMin: (float)dtMin, DtMax: (float)dtMax),
            };
        }
    }

    private protected override void Mixer(int layer, MambaState state, int tokens)
    {
        var be = Backend;
        var l = _layers[layer];
        be.Linear(l.InProj, l.InBias, Normed, _projected, tokens);
        be.CausalConv1d(_convInput, l.ConvWeight, l.ConvBias, state.Conv[layer], _convolved, tokens, _convChannels, _kernel);
        // A decoded token has nothing to gain from the chunked form.
        if (tokens == 1)
            be.SelectiveScan(l.Scan, state.Ssm[layer], _scanned, tokens);
        else
            be.SsdScan(l.Scan, state.Ssm[layer], _scanned, tokens, _chunk);
        // The gate is applied inside the scan; the norm is over groups of E/G (as the original RMSNormGated with
        // group_size E/G; transformers' torch path normalises all of E, the same for one group).
        be.RmsNorm(_scanned, l.Norm, _scanned, tokens * _groups, _inner / _groups, Eps);
        be.Linear(l.OutProj, l.OutBias, _scanned, Normed, tokens);
    }
}
