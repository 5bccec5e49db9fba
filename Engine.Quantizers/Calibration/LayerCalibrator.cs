using System.Globalization;
using Engine.Formats;
using Engine.Runtime;
using Engine.Runtime.Evaluation;
using Engine.Runtime.Models;
using Engine.Runtime.Sampling;

namespace Engine.Quantizers.Calibration;

/// <summary>How calibration runs: its text (null: text the model samples from itself), how much of it, where.</summary>
public sealed record CalibrationOptions
{
    public const int DefaultWindows = 128;
    public const int DefaultContext = 512;

    public string? TextFile { get; init; }
    public int Windows { get; init; } = DefaultWindows;
    public int Context { get; init; } = DefaultContext;
    public BackendKind Backend { get; init; } = BackendKind.Vulkan;
    public int? DeviceIndex { get; init; }

    /// <summary>Picks the windows from the text (or seeds the self-sampled text).</summary>
    public int Seed { get; init; }

    public void Validate()
    {
        if (Windows < 1) throw new ArgumentException($"--calib-windows must be at least 1, got {Windows}");
        if (Context < 2) throw new ArgumentException($"--calib-ctx must be at least 2, got {Context}");
        if (TextFile is not null && !File.Exists(TextFile)) throw new FileNotFoundException($"calibration text not found: {TextFile}");
    }
}

/// <summary>Calibration progress: layer <paramref name="Layer"/> of <paramref name="Layers"/> (0-based), window <paramref name="Window"/> of <paramref name="Windows"/> done; or sampling text when <paramref name="Sampling"/>.</summary>
public readonly record struct CalibrationProgress(int Layer, int Layers, int Window, int Windows, bool Sampling = false);

/// <summary>
/// GPTQ-style sequential calibration. The model runs on calibration windows up to layer l with layers 0..l-1 already
/// quantized (what <see cref="Quantized"/> was told), and the second moment of every product input of layer l is
/// collected; the caller then quantizes layer l and moves on, so each layer is fitted to the inputs the quantized
/// model will really give it. Only one layer's statistics are held at a time. The windows are fixed up front from the
/// seed, so a run is deterministic. With cross statistics, the full-precision model runs each window too, just before
/// the quantized one, and the two models' inputs to each product are paired token by token into the cross moment; only
/// one window's inputs are held at a time.
/// </summary>
public sealed class LayerCalibrator
{
    private readonly ModelFile _source;
    private readonly CalibrationOptions _options;
    private readonly TensorNames _names;
    private readonly IProgress<CalibrationProgress>? _progress;
    private readonly Dictionary<string, StoredBytes> _quantized = new(StringComparer.Ordinal);
    private readonly int[][] _windows;
    private readonly bool _crossStatistics;
    private int _layer = -1;
    private Dictionary<string, InputStatistics> _statistics = [];

    /// <param name="crossStatistics">Also collect the cross moment with the full-precision model's inputs (<see cref="InputStatistics.CrossMean"/>).</param>
    public LayerCalibrator(ModelFile source, CalibrationOptions options, IProgress<CalibrationProgress>? progress = null, bool crossStatistics = false)
    {
        options.Validate();
        _source = source;
        _options = options;
        _progress = progress;
        _crossStatistics = crossStatistics;
        _names = ArchitectureRegistry.TensorNamesOf(source.Config.Architecture);
        if (options.Context > source.Config.MaxPositions && !ArchitectureRegistry.IsRecurrent(source.Config.Architecture))
            throw new ArgumentException($"--calib-ctx {options.Context} exceeds the model's context length {source.Config.MaxPositions}");
        _windows = options.TextFile is { } file ? WindowsOf(file) : SampledWindows();
    }

    /// <summary>What the statistics were measured on, for the report.</summary>
    public string Description { get; private set; } = "";

    public int Layers => _source.Config.LayerCount;

    /// <summary>The calibration windows, in the order they run.</summary>
    internal IReadOnlyList<int[]> Windows => _windows;

    /// <summary>The decoder layer of a tensor (null: not in a layer, so not calibrated).</summary>
    public int? LayerOf(string tensor) => _names.LayerOf(tensor);

    /// <summary>
    /// The input statistics of a layer's tensor, measured with every tensor passed to <see cref="Quantized"/> so far in
    /// place. Layers must be asked for in order; asking for a new layer runs its calibration pass. Null when no
    /// calibration token reached the product (an expert never routed) or the product does not read the stored
    /// matrix's columns (a tensor the model uses transposed): the caller then has nothing to weight errors by.
    /// </summary>
    public InputStatistics? StatisticsOf(string tensor, int columns)
    {
        int layer = LayerOf(tensor) ?? throw new ArgumentException($"tensor '{tensor}' is in no decoder layer");
        if (layer != _layer)
        {
            if (layer < _layer) throw new InvalidOperationException($"layer {layer} asked for after layer {_layer}: calibration runs layers in order");
            _statistics = Run(layer);
            _layer = layer;
        }
        return _statistics.TryGetValue(tensor, out var statistics) && statistics.Columns == columns && statistics.Tokens > 0 ? statistics : null;
    }

    /// <summary>A tensor is now quantized: later passes run with it (and its companions) in place of the source's.</summary>
    public void Quantized(EncodedTensor encoded)
    {
        _quantized[encoded.Info.Name] = encoded.Tensor;
        foreach (var companion in encoded.Companions) _quantized[companion.Info.Name] = companion;
    }

    /// <summary>Largest reference logits kept for <see cref="KlDivergenceWith"/> (floats: 256 MiB).</summary>
    private const long ReferenceLogitsLimit = 64L << 20;

    /// <summary>Most windows <see cref="KlDivergenceWith"/> scores: a ratio per matrix needs no more.</summary>
    private const int ProbeWindows = 4;

    private float[][]? _referenceLogits;

    /// <summary>
    /// Mean KL divergence of the next-token distribution, unquantized model against the unquantized model with
    /// <paramref name="encoded"/> alone in place, over the first calibration windows (at most <see cref="ProbeWindows"/>,
    /// fewer when a large vocabulary would make their reference logits exceed <see cref="ReferenceLogitsLimit"/>).
    /// </summary>
    public double KlDivergenceWith(EncodedTensor encoded)
    {
        int vocab = _source.Config.VocabSize;
        long perWindow = (long)_options.Context * vocab;
        int windows = (int)Math.Clamp(ReferenceLogitsLimit / perWindow, 1, Math.Min(ProbeWindows, _windows.Length));
        _referenceLogits ??= Logits(_source.Tensors, windows);
        var replaced = new Dictionary<string, StoredBytes>(StringComparer.Ordinal) { [encoded.Info.Name] = encoded.Tensor };
        foreach (var companion in encoded.Companions) replaced[companion.Info.Name] = companion;
        using var tensors = new OverlayTensors(_source.Tensors, replaced);
        var logits = Logits(tensors, windows);
        double kl = 0;
        for (int w = 0; w < windows; w++)
        {
            for (int i = 0; i < _options.Context; i++)
            {
                var p = _referenceLogits[w].AsSpan(i * vocab, vocab);
                var q = logits[w].AsSpan(i * vocab, vocab);
                kl += Perplexity.KlDivergence(p, Perplexity.LogSumExp(p), q, Perplexity.LogSumExp(q));
            }
        }
        return kl / ((long)windows * _options.Context);
    }

    /// <summary>Every position's logits of the first <paramref name="windows"/> calibration windows, the whole model on <paramref name="tensors"/>.</summary>
    private float[][] Logits(ITensorSource tensors, int windows)
    {
        var options = new ModelOptions { Backend = _options.Backend, DeviceIndex = _options.DeviceIndex, MaxContext = _options.Context, MaxBatch = _options.Context };
        using var model = ArchitectureRegistry.Create(_source.Config, tensors, ModelLoader.CreateBackend(options), options);
        var state = model.CreateState();
        var logits = new float[windows][];
        for (int w = 0; w < windows; w++)
        {
            logits[w] = new float[_options.Context * _source.Config.VocabSize];
            state.Reset();
            model.Forward(state, _windows[w], logits[w], allPositions: true);
        }
        return logits;
    }

    /// <summary>One pass over the windows with layers 0..layer (the rest are not loaded), recording layer's product inputs.</summary>
    private Dictionary<string, InputStatistics> Run(int layer)
    {
        var config = _source.Config with { LayerCount = layer + 1 };
        var options = new ModelOptions
        {
            Backend = _options.Backend, DeviceIndex = _options.DeviceIndex, JoinMatrices = false,
            MaxContext = _options.Context, MaxBatch = _options.Context,
        };
        bool Wanted(string name) => LayerOf(name) == layer;
        var fullPrecisionInputs = _crossStatistics ? new Queue<float[]>() : null;
        var backend = new RecordingBackend(ModelLoader.CreateBackend(options), Wanted) { FullPrecisionInputs = fullPrecisionInputs };
        using var tensors = new OverlayTensors(_source.Tensors, _quantized);
        using var model = ArchitectureRegistry.Create(config, tensors, backend, options);
        using var sourceTensors = new OverlayTensors(_source.Tensors, new Dictionary<string, StoredBytes>());
        using var fullPrecision = fullPrecisionInputs is null ? null
            : ArchitectureRegistry.Create(config, sourceTensors, new RecordingBackend(ModelLoader.CreateBackend(options), Wanted) { KeptInputs = fullPrecisionInputs }, options);
        var state = model.CreateState();
        var fullPrecisionState = fullPrecision?.CreateState();
        var logits = new float[model.Config.VocabSize];
        for (int w = 0; w < _windows.Length; w++)
        {
            if (fullPrecision is not null)
            {
                fullPrecisionState!.Reset();
                fullPrecision.Forward(fullPrecisionState, _windows[w], logits, allPositions: false);
            }
            state.Reset();
            model.Forward(state, _windows[w], logits, allPositions: false);
            if (fullPrecisionInputs is { Count: > 0 })
                throw new InvalidOperationException($"layer {layer}: the full-precision model ran products the quantized model did not");
            _progress?.Report(new CalibrationProgress(layer, Layers, w + 1, _windows.Length));
        }
        return backend.Statistics;
    }

    /// <summary>Windows of the text's token stream at seeded random offsets (as GPTQ samples its calibration set).</summary>
    private int[][] WindowsOf(string file)
    {
        var tokenizer = ModelLoader.LoadTokenizer(_source)
            ?? throw new ArgumentException($"{_source.Path} has no tokenizer to read the calibration text with");
        var tokens = TextTokens.Read(file, tokenizer);
        int context = _options.Context;
        if (tokens.Count < context)
            throw new ArgumentException($"the calibration text {file} has {tokens.Count} tokens, fewer than one window of {context}");
        var random = new Random(_options.Seed);
        var windows = new int[_options.Windows][];
        for (int w = 0; w < windows.Length; w++)
        {
            int start = random.Next(tokens.Count - context + 1);
            windows[w] = [.. tokens.GetRange(start, context)];
        }
        Description = string.Create(CultureInfo.InvariantCulture,
            $"{Path.GetFileName(file)} ({tokens.Count:N0} tokens): {windows.Length} windows of {context} tokens at seeded random offsets");
        return windows;
    }

    /// <summary>
    /// No text given: windows the unquantized model samples from itself (temperature 1, no truncation, from BOS or
    /// token 0), as EBSS-style self-calibration does, so the statistics follow the model's own distribution.
    /// </summary>
    private int[][] SampledWindows()
    {
        var options = new ModelOptions { Backend = _options.Backend, DeviceIndex = _options.DeviceIndex, MaxContext = _options.Context };
        using var model = ModelLoader.Load(_source, options);
        var sampler = new Sampler(new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = _options.Seed });
        int start = _source.Config.BosTokenId ?? 0;
        var logits = new float[model.Config.VocabSize];
        var windows = new int[_options.Windows][];
        for (int w = 0; w < windows.Length; w++)
        {
            var state = model.CreateState();
            var window = new int[_options.Context];
            window[0] = start;
            for (int i = 1; i < window.Length; i++)
            {
                model.Forward(state, window.AsSpan(i - 1, 1), logits, allPositions: false);
                window[i] = sampler.Next(logits, window.AsSpan(0, i));
            }
            windows[w] = window;
            _progress?.Report(new CalibrationProgress(0, Layers, w + 1, windows.Length, Sampling: true));
        }
        Description = $"no text given: {windows.Length} windows of {_options.Context} tokens sampled from the model itself (temperature 1, seed {_options.Seed})";
        return windows;
    }
}
