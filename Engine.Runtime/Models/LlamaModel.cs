using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// The Llama family: Llama 2/3, Mistral, SmolLM, Qwen2 (q/k/v biases), Qwen3 (per-head q/k RMSNorm), with GQA,
/// RoPE in either layout (or Qwen2-VL's multimodal RoPE: see <see cref="RopePositions"/>), a SwiGLU or mixture-of-experts feed-forward per layer (Mixtral, Qwen2/3-MoE, DeepSeek-MoE:
/// see <see cref="FeedForward"/>) and a tied or separate output head. Optional parts are detected from the tensors
/// present, so one class serves every member.
/// Shapes: D = hidden size, H = heads, Hkv = kv heads, d = head dim, V = vocab, B = batch tokens.
/// </summary>
public sealed class LlamaModel : ILanguageModel
{
    private sealed class Layer
    {
        public required ITensor AttentionNorm { get; init; }   // [D]
        public required Projection[] Projections { get; init; } // q, k, v joined into one [(H + 2 Hkv)·d, D] when their format allows
        public required IWeightMatrix Output { get; init; }    // [D, H*d]
        public ITensor? QueryNorm { get; init; }               // [d] (Qwen3)
        public ITensor? KeyNorm { get; init; }                 // [d]
        public required ITensor FfnNorm { get; init; }         // [D]
        public required FeedForward FeedForward { get; init; }
    }

    /// <summary>A product writing rows [Offset, Offset + Matrix.Rows) of each token's q|k|v row (biases: Qwen2).</summary>
    private sealed record Projection(IWeightMatrix Matrix, ITensor? Bias, int Offset);

    /// <summary>Keys and values of every layer: [layer][position][Hkv*d], in the cache type of the model's options.</summary>
    private sealed class KvCache(ITensor[] keys, ITensor[] values) : IModelState
    {
        public ITensor[] Keys { get; } = keys;
        public ITensor[] Values { get; } = values;
        public int Position { get; set; }

        /// <summary>
        /// Rotary position of the next text token minus <see cref="Position"/>: 0 until multimodal RoPE gives an image
        /// fewer positions than tokens.
        /// </summary>
        public int RopeShift { get; set; }

        public void Reset() => (Position, RopeShift) = (0, 0);
    }

    private readonly Layer[] _layers;
    private readonly IWeightMatrix _embedding;   // [V, D]
    private readonly IWeightMatrix _head;        // [V, D], the embedding when tied
    private readonly ITensor _ropeTable;         // [MaxContext][d/2] (cos, sin)
    private readonly int[]? _mropeSection;       // rotary pairs per position component (temporal, height, width)
    private readonly ITensor? _ropePositions;    // [B][3], a batch's multimodal positions
    private readonly int _maxBatch;
    private readonly ElementType _cacheType;
    private readonly int _dim, _heads, _kvHeads, _headDim, _vocab;
    private readonly float _eps;

    // Activations, allocated once for the largest batch.
    private readonly ITensor _x, _normed, _qkv, _q, _k, _attention;
    private readonly FeedForwardScratch _feedForwardScratch;
    private readonly OutputHead _output;

    public ModelConfig Config { get; }
    public IBackend Backend { get; }
    public int MaxContext { get; }
    public ElementType? CacheType => _cacheType;

    /// <summary>The head, each layer's attention projections in full and its feed-forward's share (the chosen experts').</summary>
    public long WeightBytesPerToken =>
        _head.ByteSize + _layers.Sum(l => l.Projections.Sum(p => p.Matrix.ByteSize) + l.Output.ByteSize + l.FeedForward.BytesPerToken);

    public string WeightFormats =>
        string.Join("+", _layers.SelectMany(l => l.Projections.Select(p => p.Matrix).Append(l.Output).Concat(l.FeedForward.Matrices))
            .Prepend(_head).Prepend(_embedding).Select(m => WeightTypes.Get(m.Type).Name).Distinct());

    /// <param name="tensorPrefix">Put in front of every tensor name (a language model inside a multimodal one).</param>
    public LlamaModel(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options, string tensorPrefix = "")
    {
        Config = config;
        Backend = backend;
        _dim = config.HiddenSize;
        _heads = config.HeadCount;
        _kvHeads = config.KvHeadCount;
        _headDim = config.HeadDim;
        _vocab = config.VocabSize;
        _eps = (float)config.RmsNormEps;
        if (_heads <= 0 || _kvHeads <= 0 || _heads % _kvHeads != 0 || _headDim <= 0 || _headDim % 2 != 0)
            throw new InvalidDataException($"unsupported attention shape: {_heads} heads, {_kvHeads} kv heads, head dim {_headDim}");
        MaxContext = Math.Min(options.MaxContext ?? Math.Min(config.MaxPositions, ModelOptions.DefaultMaxContext), config.MaxPositions);
        if (MaxContext <= 0) throw new InvalidDataException($"context length {MaxContext} is not positive");
        _maxBatch = Math.Clamp(options.MaxBatch, 1, MaxContext);
        _cacheType = options.CacheType;

        var loader = new WeightLoader(tensors, backend, tensorPrefix, options.JoinMatrices);
        _embedding = loader.Matrix("model.embed_tokens.weight", _vocab, _dim);
        _head = loader.Has("lm_head.weight") ? loader.Matrix("lm_head.weight", _vocab, _dim) : _embedding;
        _layers = new Layer[config.LayerCount];
        int qDim = _heads * _headDim, kvDim = _kvHeads * _headDim;
        for (int i = 0; i < _layers.Length; i++)
        {
            string p = $"model.layers.{i}.";
            _layers[i] = new Layer
            {
                AttentionNorm = loader.Vector(p + "input_layernorm.weight", _dim),
                Projections = LoadProjections(loader, p + "self_attn.", qDim, kvDim),
                Output = loader.Matrix(p + "self_attn.o_proj.weight", _dim, qDim),
                QueryNorm = loader.OptionalVector(p + "self_attn.q_norm.weight", _headDim),
                KeyNorm = loader.OptionalVector(p + "self_attn.k_norm.weight", _headDim),
                FfnNorm = loader.Vector(p + "post_attention_layernorm.weight", _dim),
                FeedForward = FeedForward.Load(config, loader, i),
            };
        }
        _ropeTable = backend.UploadVector(RopeTable.Compute(MaxContext, _headDim, config.RopeTheta, RopeScaling.FromConfig(config.Raw)));
        _mropeSection = MropeSection(config.Raw, _headDim);
        if (_mropeSection is not null) _ropePositions = backend.Allocate(_maxBatch * 3);

        int b = _maxBatch;
        _x = backend.Allocate(b * _dim);
        _normed = backend.Allocate(b * _dim);
        _qkv = backend.Allocate(b * (qDim + 2 * kvDim));
        _q = backend.Allocate(b * qDim);
        _k = backend.Allocate(b * kvDim);
        _attention = backend.Allocate(b * qDim);
        _feedForwardScratch = new FeedForwardScratch(backend, b, _dim, [.. _layers.Select(l => l.FeedForward)]);
        var finalNorm = loader.Vector("model.norm.weight", _dim);
        _output = new OutputHead(backend, _head, _x, _normed, ProductFusion.RmsNormed(finalNorm, _eps), _dim, _vocab, b, MaxContext);
    }

    /// <summary>q, k and v as one product when their format allows, else three (with their biases, if any).</summary>
    private Projection[] LoadProjections(WeightLoader loader, string prefix, int qDim, int kvDim)
    {
        (string Name, int Rows)[] parts = [(prefix + "q_proj", qDim), (prefix + "k_proj", kvDim), (prefix + "v_proj", kvDim)];
        var joined = loader.Joined(prefix + "qkv_proj.weight (joined)", [.. parts.Select(p => (p.Name + ".weight", p.Rows))], _dim);
        if (joined is null)
            return [.. parts.Select((p, i) => new Projection(loader.Matrix(p.Name + ".weight", p.Rows, _dim), loader.OptionalVector(p.Name + ".bias", p.Rows), i == 0 ? 0 : qDim + (i - 1) * kvDim))];
        if (!parts.Any(p => loader.Has(p.Name + ".bias"))) return [new Projection(joined, null, 0)];
        float[] bias = [.. parts.SelectMany(p => loader.Has(p.Name + ".bias") ? loader.Floats(p.Name + ".bias", p.Rows) : new float[p.Rows])];
        return [new Projection(joined, Backend.UploadVector(bias), 0)];
    }

    public IModelState CreateState()
    {
        int size = MaxContext * _kvHeads * _headDim;
        var keys = new ITensor[_layers.Length];
        var values = new ITensor[_layers.Length];
        for (int i = 0; i < _layers.Length; i++)
        {
            keys[i] = Backend.Allocate(size, _cacheType);
            values[i] = Backend.Allocate(size, _cacheType);
        }
        return new KvCache(keys, values);
    }

    /// <summary>
    /// Overwrites rows of a batch's input embeddings <paramref name="x"/> ([tokens][D], on the backend) before the layers
    /// run: how a multimodal model puts image features in place of its image tokens.
    /// </summary>
    internal delegate void EmbeddingEdit(ITensor x, ReadOnlySpan<int> tokens);

    /// <summary>
    /// Fills the multimodal RoPE positions [tokens][3] (temporal, height, width) of a batch whose first text position
    /// (t = h = w for text) is <paramref name="start"/>. A batch whose positions are all text positions runs plain RoPE,
    /// so a decode step writes nothing to the device.
    /// </summary>
    internal delegate void RopePositions(ReadOnlySpan<int> tokens, int start, Span<int> positions);

    public void Forward(IModelState state, ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions) =>
        Forward(state, tokens, logits, allPositions, null);

    /// <summary>
    /// <see cref="Forward(IModelState, ReadOnlySpan{int}, Span{float}, bool)"/>, with <paramref name="edit"/> applied to
    /// each batch's embeddings in order and <paramref name="positions"/> giving each batch's multimodal RoPE positions.
    /// </summary>
    internal void Forward(IModelState state, ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions, EmbeddingEdit? edit,
        RopePositions? positions = null)
    {
        var cache = state as KvCache ?? throw new ArgumentException("the state was made by another model", nameof(state));
        if (positions is not null && _mropeSection is null)
            throw new InvalidOperationException("multimodal RoPE positions given to a model without rope_scaling.mrope_section");
        _output.Forward(cache.Position, tokens, logits, allPositions, batch =>
        {
            bool multimodal = positions is not null && WritePositions(cache, batch, positions);
            Layers(cache, batch, edit, multimodal);
            cache.Position += batch.Length;
        });
    }

    /// <summary>
    /// Asks for a batch's positions; when any differs from its text position, uploads them and moves the text positions
    /// that follow to one past the largest (Qwen2-VL's get_rope_index). Returns whether the batch needs them.
    /// </summary>
    private bool WritePositions(KvCache cache, ReadOnlySpan<int> batch, RopePositions positions)
    {
        int start = cache.Position + cache.RopeShift, n = batch.Length;
        var triples = new int[n * 3];
        positions(batch, start, triples);
        bool plain = true;
        int max = -1;
        for (int i = 0; i < triples.Length; i++)
        {
            plain &= triples[i] == start + i / 3;
            max = Math.Max(max, triples[i]);
        }
        if (plain) return false;
        if (triples.Min() < 0 || max >= MaxContext)
            throw new ArgumentException($"multimodal RoPE positions {triples.Min()}..{max} are outside the context of {MaxContext}");
        Backend.Write(_ropePositions!, 0, Array.ConvertAll(triples, p => (float)p));
        cache.RopeShift = max + 1 - (cache.Position + n);
        return true;
    }

    /// <summary>rope_scaling (or rope_parameters).mrope_section: rotary pairs per component, summing to d/2; null without one.</summary>
    private static int[]? MropeSection(System.Text.Json.JsonElement? raw, int headDim)
    {
        if (raw is not { ValueKind: System.Text.Json.JsonValueKind.Object } root) return null;
        foreach (string key in new[] { "rope_scaling", "rope_parameters" })
        {
            if (!root.TryGetProperty(key, out var section) || section.ValueKind != System.Text.Json.JsonValueKind.Object
                || !section.TryGetProperty("mrope_section", out var value) || value.ValueKind != System.Text.Json.JsonValueKind.Array)
                continue;
            int[] sizes = [.. value.EnumerateArray().Select(v => v.GetInt32())];
            if (sizes.Length != 3 || sizes.Any(v => v < 0) || sizes.Sum() != headDim / 2)
                throw new InvalidDataException($"config.json {key}.mrope_section [{string.Join(", ", sizes)}] must be three sizes summing to head_dim / 2 = {headDim / 2}");
            return sizes;
        }
        return null;
    }

    public void Dispose() => Backend.Dispose();

    /// <summary>Runs every layer on a batch, leaving the hidden states in _x and storing keys/values in the cache.</summary>
    private void Layers(KvCache cache, ReadOnlySpan<int> tokens, EmbeddingEdit? edit, bool multimodalRope)
    {
        var be = Backend;
        int n = tokens.Length, pos = cache.Position;
        int kvDim = _kvHeads * _headDim;
        float scale = 1f / MathF.Sqrt(_headDim);
        be.Embedding(_embedding, tokens, _x);
        edit?.Invoke(_x, tokens);
        int width = _heads * _headDim + 2 * kvDim;
        var norm = (ITensor weight) => ProductFusion.RmsNormed(weight, _eps);
        for (int i = 0; i < _layers.Length; i++)
        {
            var layer = _layers[i];
            // x += o(attention(rope(q), rope(k), v)) over qkv = (q|k|v)(RMSNorm(x)).
            if (layer.Projections is [var joined])
                be.Linear(joined.Matrix, joined.Bias, _x, _qkv, n, norm(layer.AttentionNorm));
            else
            {
                be.RmsNorm(_x, layer.AttentionNorm, _normed, n, _dim, _eps);
                foreach (var (matrix, bias, offset) in layer.Projections)
                {
                    be.Linear(matrix, bias, _normed, _q, n);
                    be.CopyRows(_q, 0, matrix.Rows, _qkv, offset, width, matrix.Rows, n);
                }
            }
            if (multimodalRope)
                MultimodalRope(layer, cache, i, n, pos);
            else
                be.RopeKv(_qkv, _ropeTable, _q, cache.Keys[i], cache.Values[i], n, _heads, _kvHeads, _headDim, pos, cache.RopeShift,
                    Config.RopeLayout, layer.QueryNorm, layer.KeyNorm, _eps);
            be.Attention(_q, cache.Keys[i], cache.Values[i], _attention, n, pos, _heads, _kvHeads, _headDim, scale, window: Config.SlidingWindow(i));
            be.Linear(layer.Output, null, _attention, _x, n, new ProductFusion { Accumulate = true });
            layer.FeedForward.AddTo(be, _x, layer.FfnNorm, _eps, n, _feedForwardScratch);
        }
    }

    /// <summary>
    /// The attention prologue with three positions per token (an image in the batch): unfused, as it is rare; the
    /// copies into the cache round to its element type as RopeKv's stores do.
    /// </summary>
    private void MultimodalRope(Layer layer, KvCache cache, int i, int n, int pos)
    {
        var be = Backend;
        int qDim = _heads * _headDim, kvDim = _kvHeads * _headDim, width = qDim + 2 * kvDim;
        be.CopyRows(_qkv, 0, width, _q, 0, qDim, qDim, n);
        be.CopyRows(_qkv, qDim, width, _k, 0, kvDim, kvDim, n);
        be.CopyRows(_qkv, qDim + kvDim, width, cache.Values[i], pos * kvDim, kvDim, kvDim, n);
        if (layer.QueryNorm is not null) be.RmsNorm(_q, layer.QueryNorm, _q, n * _heads, _headDim, _eps);
        if (layer.KeyNorm is not null) be.RmsNorm(_k, layer.KeyNorm, _k, n * _kvHeads, _headDim, _eps);
        be.RopePositions(_q, _ropeTable, _ropePositions!, n, _heads, _headDim, _mropeSection![0], _mropeSection[1], Config.RopeLayout);
        be.RopePositions(_k, _ropeTable, _ropePositions!, n, _kvHeads, _headDim, _mropeSection[0], _mropeSection[1], Config.RopeLayout);
        be.Copy(_k, 0, cache.Keys[i], pos * kvDim, n * kvDim);
    }
}
