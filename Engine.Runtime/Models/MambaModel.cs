using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// Mamba (v1, Hugging Face MambaForCausalLM): each block's mixer projects to x and a gate z, convolves x causally,
/// derives the input-dependent step dt (through a low-rank projection) and B, C from it, and runs the selective scan,
/// one head per channel with its own decay rates per state column.
/// Shapes: D = hidden, E = inner (expand·D), N = state size, R = dt rank, K = conv kernel.
/// </summary>
public sealed class MambaModel : SsmModel
{
    private sealed class Layer
    {
        public required IWeightMatrix InProj { get; init; }   // [2E, D]: x then z
        public required ITensor ConvWeight { get; init; }     // [E][K]
        public ITensor? ConvBias { get; init; }               // [E] (use_conv_bias)
        public ITensor? InBias { get; init; }                 // (use_bias)
        public ITensor? OutBias { get; init; }                // [D] (use_bias)
        public required IWeightMatrix XProj { get; init; }    // [R + 2N, E]: dt input, B, C
        public required IWeightMatrix DtProj { get; init; }   // [E, R]
        public required IWeightMatrix OutProj { get; init; }  // [D, E]
        public required SsmInputs Scan { get; init; }         // views of the activations below, with this layer's A, D and dt bias
    }

    private readonly Layer[] _layers;
    private readonly int _inner, _stateSize, _rank, _kernel;

    // Activations for the largest batch.
    private readonly ITensor _projected, _convolved, _selection, _stepInput, _step, _scanned;

    protected override IEnumerable<IWeightMatrix> LayerMatrices => _layers.SelectMany(l => new[] { l.InProj, l.XProj, l.DtProj, l.OutProj });

    protected override (int Conv, int Ssm) StateLengths => (_inner * (_kernel - 1), _inner * _stateSize);

    public MambaModel(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options)
        : this(config, tensors, backend, options, new WeightLoader(tensors, backend))
    {
    }

    private MambaModel(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options, WeightLoader loader)
        : base(config, tensors, backend, options, loader)
    {
        var raw = ConfigSection.Root(config);
        RequireSilu(raw);
        bool bias = raw.Bool("use_bias", false), convBias = raw.Bool("use_conv_bias", true);
        _inner = config.IntermediateSize > 0 ? config.IntermediateSize : (int)(raw.Double("expand", 2) * Dim);
        _stateSize = raw.Positive("state_size", 16);
        _kernel = raw.Positive("conv_kernel", 4);
        if (_kernel < 2) throw new InvalidDataException($"config.json: conv_kernel {_kernel} is below 2");
        // "auto" (the default) is ceil(D / 16).
        bool autoRank = raw.Find("time_step_rank")?.ValueKind == System.Text.Json.JsonValueKind.String && raw.String("time_step_rank", "") == "auto";
        _rank = autoRank ? (Dim + 15) / 16 : raw.Positive("time_step_rank", (Dim + 15) / 16);
        int selection = _rank + 2 * _stateSize;

        int b = MaxBatch;
        _projected = backend.Allocate(b * 2 * _inner);
        _convolved = backend.Allocate(b * _inner);
        _selection = backend.Allocate(b * selection);
        _stepInput = backend.Allocate(b * _rank);
        _step = backend.Allocate(b * _inner);
        _scanned = backend.Allocate(b * _inner);

        _layers = new Layer[config.LayerCount];
        for (int i = 0; i < _layers.Length; i++)
        {
            string p = $"backbone.layers.{i}.mixer.";
            _layers[i] = new Layer
            {
                InProj = loader.Matrix(p + "in_proj.weight", 2 * _inner, Dim),
                ConvWeight = ConvWeight(loader, backend, p + "conv1d.weight", _inner, _kernel),
                ConvBias = convBias ? loader.Vector(p + "conv1d.bias", _inner) : null,
                InBias = bias ? loader.Vector(p + "in_proj.bias", 2 * _inner) : null,
                OutBias = bias ? loader.Vector(p + "out_proj.bias", Dim) : null,
                XProj = loader.Matrix(p + "x_proj.weight", selection, _inner),
                DtProj = loader.Matrix(p + "dt_proj.weight", _inner, _rank),
                OutProj = loader.Matrix(p + "out_proj.weight", Dim, _inner),
                Scan = new SsmInputs(
                    X: RowView.Dense(_convolved, _inner),
                    Dt: RowView.Dense(_step, _inner),
                    B: new RowView(_selection, _rank, selection),
                    C: new RowView(_selection, _rank + _stateSize, selection),
                    Z: new RowView(_projected, _inner, 2 * _inner),
                    DtBias: loader.Vector(p + "dt_proj.bias", _inner),
                    A: DecayRates(loader, backend, p + "A_log", _inner * _stateSize),
                    D: loader.Vector(p + "D", _inner),
                    Heads: _inner, HeadDim: 1, StateSize: _stateSize, Groups: 1, DtMin: 0, DtMax: float.PositiveInfinity),
            };
        }
    }

    private protected override void Mixer(int layer, MambaState state, int tokens)
    {
        var be = Backend;
        var l = _layers[layer];
        int selection = _rank + 2 * _stateSize;
        be.Linear(l.InProj, l.InBias, Normed, _projected, tokens);
        be.CausalConv1d(new RowView(_projected, 0, 2 * _inner), l.ConvWeight, l.ConvBias, state.Conv[layer], _convolved, tokens, _inner, _kernel);
        be.Linear(l.XProj, null, _convolved, _selection, tokens);
        be.CopyRows(_selection, 0, selection, _stepInput, 0, _rank, _rank, tokens);
        be.Linear(l.DtProj, null, _stepInput, _step, tokens);   // its bias is added inside the scan
        be.SelectiveScan(l.Scan, state.Ssm[layer], _scanned, tokens);
        be.Linear(l.OutProj, l.OutBias, _scanned, Normed, tokens);
    }
}
