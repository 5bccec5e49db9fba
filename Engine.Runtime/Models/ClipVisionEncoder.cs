using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// CLIP's vision transformer (ViT) as LLaVA uses it: patch embedding (the p×p convolution with stride p, run as one
/// linear map over unfolded patches), a class token, learned position embeddings, <c>pre_layrnorm</c> (sic), then
/// pre-norm encoder layers with bidirectional attention. Only the layers up to the requested feature layer are
/// loaded and run; <c>post_layernorm</c> is not part of LLaVA's image features.
/// Shapes: C = hidden size, P = patches per image ((image/p)²), T = P + 1 tokens, F = FFN size.
/// </summary>
internal sealed class ClipVisionEncoder
{
    private sealed class Layer
    {
        public required ITensor Norm1Weight { get; init; }     // [C]
        public required ITensor Norm1Bias { get; init; }       // [C]
        public required IWeightMatrix Query { get; init; }     // [C, C]
        public required IWeightMatrix Key { get; init; }       // [C, C]
        public required IWeightMatrix Value { get; init; }     // [C, C]
        public required IWeightMatrix Output { get; init; }    // [C, C]
        public required ITensor QueryBias { get; init; }       // [C]
        public required ITensor KeyBias { get; init; }         // [C]
        public required ITensor ValueBias { get; init; }       // [C]
        public required ITensor OutputBias { get; init; }      // [C]
        public required ITensor Norm2Weight { get; init; }     // [C]
        public required ITensor Norm2Bias { get; init; }       // [C]
        public required IWeightMatrix Up { get; init; }        // fc1 [F, C]
        public required ITensor UpBias { get; init; }          // [F]
        public required IWeightMatrix Down { get; init; }      // fc2 [C, F]
        public required ITensor DownBias { get; init; }        // [C]
    }

    private readonly IBackend _backend;
    private readonly Layer[] _layers;
    private readonly IWeightMatrix _patchEmbedding;   // [C, channels·p·p]
    private readonly ITensor _classEmbedding;         // [C]
    private readonly ITensor _positionEmbedding;      // [T, C]
    private readonly ITensor _preNormWeight, _preNormBias;
    private readonly int _heads, _headDim, _ffn, _patchSize, _grid;
    private readonly float _eps;
    private readonly Activation _activation;

    // Activations for one image, allocated once.
    private readonly ITensor _patches, _x, _normed, _q, _k, _v, _attention, _up;

    /// <summary>Channels of the input image.</summary>
    public int Channels { get; }

    /// <summary>Side of the (square) input image in pixels.</summary>
    public int ImageSize { get; }

    /// <summary>C: the width of every output row.</summary>
    public int Width { get; }

    /// <summary>T: output rows per image, the class token first, then the patches row by row.</summary>
    public int Tokens { get; }

    /// <param name="layersToRun">Encoder layers applied (0 gives the embeddings after pre_layrnorm).</param>
    public ClipVisionEncoder(ConfigSection config, ITensorSource tensors, IBackend backend, string prefix, int layersToRun)
    {
        _backend = backend;
        Width = config.Positive("hidden_size");
        _heads = config.Positive("num_attention_heads");
        _ffn = config.Positive("intermediate_size");
        ImageSize = config.Positive("image_size");
        _patchSize = config.Positive("patch_size");
        Channels = config.Positive("num_channels", 3);
        int layerCount = config.Positive("num_hidden_layers");
        _eps = (float)config.Double("layer_norm_eps", 1e-5);
        _activation = config.Activation("hidden_act", "quick_gelu");
        if (Width % _heads != 0)
            throw new InvalidDataException($"{config.Where}: hidden_size {Width} is not a multiple of num_attention_heads {_heads}");
        if (ImageSize % _patchSize != 0)
            throw new InvalidDataException($"{config.Where}: image_size {ImageSize} is not a multiple of patch_size {_patchSize}");
        if (layersToRun < 0 || layersToRun > layerCount)
            throw new InvalidDataException($"{config.Where}: the feature layer needs {layersToRun} of {layerCount} encoder layers");
        _headDim = Width / _heads;
        _grid = ImageSize / _patchSize;
        Tokens = _grid * _grid + 1;

        var loader = new WeightLoader(tensors, backend, prefix);
        int patchLength = Channels * _patchSize * _patchSize;
        _patchEmbedding = loader.Reshaped("embeddings.patch_embedding.weight", Width, patchLength);
        _classEmbedding = loader.Vector("embeddings.class_embedding", Width);
        _positionEmbedding = loader.Vector("embeddings.position_embedding.weight", Tokens * Width);
        _preNormWeight = loader.Vector("pre_layrnorm.weight", Width);
        _preNormBias = loader.Vector("pre_layrnorm.bias", Width);
        _layers = new Layer[layersToRun];
        for (int i = 0; i < _layers.Length; i++)
        {
            string p = $"encoder.layers.{i}.";
            _layers[i] = new Layer
            {
                Norm1Weight = loader.Vector(p + "layer_norm1.weight", Width),
                Norm1Bias = loader.Vector(p + "layer_norm1.bias", Width),
                Query = loader.Matrix(p + "self_attn.q_proj.weight", Width, Width),
                Key = loader.Matrix(p + "self_attn.k_proj.weight", Width, Width),
                Value = loader.Matrix(p + "self_attn.v_proj.weight", Width, Width),
                Output = loader.Matrix(p + "self_attn.out_proj.weight", Width, Width),
                QueryBias = loader.Vector(p + "self_attn.q_proj.bias", Width),
                KeyBias = loader.Vector(p + "self_attn.k_proj.bias", Width),
                ValueBias = loader.Vector(p + "self_attn.v_proj.bias", Width),
                OutputBias = loader.Vector(p + "self_attn.out_proj.bias", Width),
                Norm2Weight = loader.Vector(p + "layer_norm2.weight", Width),
                Norm2Bias = loader.Vector(p + "layer_norm2.bias", Width),
                Up = loader.Matrix(p + "mlp.fc1.weight", _ffn, Width),
                UpBias = loader.Vector(p + "mlp.fc1.bias", _ffn),
                Down = loader.Matrix(p + "mlp.fc2.weight", Width, _ffn),
                DownBias = loader.Vector(p + "mlp.fc2.bias", Width),
            };
        }

        int t = Tokens;
        _patches = backend.Allocate((t - 1) * patchLength);
        _x = backend.Allocate(t * Width);
        _normed = backend.Allocate(t * Width);
        _q = backend.Allocate(t * Width);
        _k = backend.Allocate(t * Width);
        _v = backend.Allocate(t * Width);
        _attention = backend.Allocate(t * Width);
        _up = backend.Allocate(t * _ffn);
    }

    /// <summary>The matrices one image reads, for weight accounting.</summary>
    public IEnumerable<IWeightMatrix> Matrices =>
        _layers.SelectMany(l => new[] { l.Query, l.Key, l.Value, l.Output, l.Up, l.Down }).Prepend(_patchEmbedding);

    /// <summary>
    /// Encodes one normalised image [Channels][ImageSize][ImageSize] (host floats). The result, [T][C], stays on the
    /// backend in the returned tensor, valid until the next call.
    /// </summary>
    public ITensor Encode(ReadOnlySpan<float> image)
    {
        if (image.Length != Channels * ImageSize * ImageSize)
            throw new ArgumentException($"an image needs {Channels}x{ImageSize}x{ImageSize} values, got {image.Length}");
        var be = _backend;
        int patches = Tokens - 1, c = Width, t = Tokens;
        be.Write(_patches, 0, Unfold(image));
        // Class token first, then the patch embeddings; positions added to all.
        be.Linear(_patchEmbedding, null, _patches, _normed, patches);
        be.Copy(_classEmbedding, 0, _x, 0, c);
        be.Copy(_normed, 0, _x, c, patches * c);
        be.Add(_x, _positionEmbedding, _x, t * c);
        be.LayerNorm(_x, _preNormWeight, _preNormBias, _x, t, c, _eps);

        float scale = 1f / MathF.Sqrt(_headDim);
        foreach (var layer in _layers)
        {
            be.LayerNorm(_x, layer.Norm1Weight, layer.Norm1Bias, _normed, t, c, _eps);
            be.Linear(layer.Query, layer.QueryBias, _normed, _q, t);
            be.Linear(layer.Key, layer.KeyBias, _normed, _k, t);
            be.Linear(layer.Value, layer.ValueBias, _normed, _v, t);
            be.Attention(_q, _k, _v, _attention, t, 0, _heads, _heads, _headDim, scale, causal: false);
            be.Linear(layer.Output, layer.OutputBias, _attention, _normed, t);
            be.Add(_x, _normed, _x, t * c);

            be.LayerNorm(_x, layer.Norm2Weight, layer.Norm2Bias, _normed, t, c, _eps);
            be.Linear(layer.Up, layer.UpBias, _normed, _up, t);
            be.Activate(_activation, _up, _up, t * _ffn);
            be.Linear(layer.Down, layer.DownBias, _up, _normed, t);
            be.Add(_x, _normed, _x, t * c);
        }
        return _x;
    }

    /// <summary>
    /// The image as rows of patches, [P][channel][ky][kx], patches in row-major grid order: the stride-p convolution
    /// becomes one matrix product with the kernel [C][channel·p·p].
    /// </summary>
    private float[] Unfold(ReadOnlySpan<float> image)
    {
        int p = _patchSize, side = ImageSize;
        var rows = new float[_grid * _grid * Channels * p * p];
        int i = 0;
        for (int gy = 0; gy < _grid; gy++)
            for (int gx = 0; gx < _grid; gx++)
                for (int channel = 0; channel < Channels; channel++)
                    for (int ky = 0; ky < p; ky++)
                    {
                        image.Slice((channel * side + gy * p + ky) * side + gx * p, p).CopyTo(rows.AsSpan(i, p));
                        i += p;
                    }
        return rows;
    }
}
