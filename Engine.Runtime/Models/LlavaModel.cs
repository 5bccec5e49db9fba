using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// LLaVA: a CLIP vision tower, a two-layer projector (linear, activation, linear) and a Llama-family language model
/// (tensors under "language_model."). An image's features — the hidden states of <c>vision_feature_layer</c>, the
/// class token dropped under the "default" select strategy — are projected to the text width and written over the
/// input embeddings of the prompt's image tokens, on the backend (<see cref="IMultimodalModel"/> says which token takes
/// which feature). Shapes: C = vision width, D = text width, N = <see cref="TokensPerImage"/>.
/// </summary>
public sealed class LlavaModel : IMultimodalModel
{
    /// <summary>The language model's cache, the attached images and how many image tokens were fed.</summary>
    private sealed class State(IModelState text) : IModelState
    {
        public IModelState Text { get; } = text;

        /// <summary>
        /// Projected features of each attached image, [N][D] on the backend: the first <see cref="ImageCount"/> are
        /// attached, the rest are kept from cleared images for reuse (backend memory lives as long as the backend).
        /// </summary>
        public List<ITensor> Images { get; } = [];

        public int ImageCount { get; set; }

        public int ImageTokensFed { get; set; }

        public int Position => Text.Position;

        public void Reset()
        {
            Text.Reset();
            ImageTokensFed = 0;
        }
    }

    private readonly LlamaModel _text;
    private readonly ClipVisionEncoder _vision;
    private readonly IWeightMatrix _projector1;   // [D, C]
    private readonly IWeightMatrix _projector2;   // [D, D]
    private readonly ITensor? _projector1Bias, _projector2Bias;
    private readonly Activation _projectorActivation;
    private readonly int _firstFeatureRow;        // 1 when the class token is dropped
    private readonly int _dim;
    private readonly ITensor _selected, _projected;   // [N][C], [N][D]

    public ModelConfig Config { get; }
    public IBackend Backend { get; }
    public int MaxContext => _text.MaxContext;
    public long WeightBytesPerToken => _text.WeightBytesPerToken;
    public string WeightFormats => _text.WeightFormats;
    public ElementType? CacheType => _text.CacheType;
    public int ImageTokenId { get; }
    public int TokensPerImage { get; }
    public IReadOnlyList<int> ImageShape { get; }

    public LlavaModel(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options)
    {
        Config = config;
        Backend = backend;
        var top = new ConfigSection(config.Raw ?? throw new InvalidDataException("a LLaVA model needs its config.json"), "config.json");
        var textConfig = ConfigSection.Of(config.Raw, "text_config");
        var visionConfig = ConfigSection.Of(config.Raw, "vision_config");
        ImageTokenId = top.Find("image_token_index") is not null ? top.Int("image_token_index") : top.Int("image_token_id");
        if (ImageTokenId < 0 || ImageTokenId >= config.VocabSize)
            throw new InvalidDataException($"config.json: image token id {ImageTokenId} is outside the vocabulary (0..{config.VocabSize - 1})");
        if (top.Find("vision_feature_layer") is { ValueKind: System.Text.Json.JsonValueKind.Array })
            throw new NotSupportedException("config.json: vision_feature_layer as a list of layers is not supported (one layer only)");
        int featureLayer = top.Int("vision_feature_layer", -2);
        _firstFeatureRow = top.String("vision_feature_select_strategy", "default") switch
        {
            "default" => 1,
            "full" => 0,
            var other => throw new NotSupportedException($"config.json: vision_feature_select_strategy '{other}' is not supported (supported: default, full)"),
        };
        int visionLayers = visionConfig.Positive("num_hidden_layers");
        int layersToRun = featureLayer < 0 ? visionLayers + 1 + featureLayer : featureLayer;
        if (layersToRun < 0 || layersToRun > visionLayers)
            throw new InvalidDataException($"config.json: vision_feature_layer {featureLayer} does not exist in a {visionLayers}-layer vision tower");

        _text = new LlamaModel(config with { Raw = textConfig.Element }, tensors, backend, options, "language_model.");
        _vision = new ClipVisionEncoder(visionConfig, tensors, backend, "vision_tower.", layersToRun);
        _dim = config.HiddenSize;
        int width = _vision.Width;
        var loader = new WeightLoader(tensors, backend, "multi_modal_projector.");
        bool bias = top.Bool("multimodal_projector_bias", true);
        _projector1 = loader.Matrix("linear_1.weight", _dim, width);
        _projector2 = loader.Matrix("linear_2.weight", _dim, _dim);
        _projector1Bias = bias ? loader.Vector("linear_1.bias", _dim) : null;
        _projector2Bias = bias ? loader.Vector("linear_2.bias", _dim) : null;
        _projectorActivation = top.Activation("projector_hidden_act", "gelu");

        TokensPerImage = _vision.Tokens - _firstFeatureRow;
        ImageShape = [_vision.Channels, _vision.ImageSize, _vision.ImageSize];
        _selected = backend.Allocate(TokensPerImage * width);
        _projected = backend.Allocate(TokensPerImage * _dim);
    }

    public IModelState CreateState() => new State(_text.CreateState());

    public void AddImages(IModelState state, ReadOnlySpan<float> pixelValues, ReadOnlySpan<int> shape)
    {
        var own = Own(state);
        int count = shape.Length switch
        {
            4 => shape[0],
            3 => 1,
            _ => throw new ArgumentException($"pixel values shape [{string.Join(", ", shape.ToArray())}] must be [images, channels, height, width]"),
        };
        if (count < 1 || !shape[^3..].SequenceEqual(ImageShape.ToArray()))
            throw new ArgumentException($"pixel values shape [{string.Join(", ", shape.ToArray())}] does not fit the model's images of [{string.Join(", ", ImageShape)}]");
        int perImage = ImageShape[0] * ImageShape[1] * ImageShape[2];
        if (pixelValues.Length != (long)count * perImage)
            throw new ArgumentException($"{pixelValues.Length} pixel values given, the shape [{string.Join(", ", shape.ToArray())}] needs {(long)count * perImage}");

        var be = Backend;
        int width = _vision.Width;
        for (int i = 0; i < count; i++)
        {
            var hidden = _vision.Encode(pixelValues.Slice(i * perImage, perImage));
            be.Copy(hidden, _firstFeatureRow * width, _selected, 0, TokensPerImage * width);
            be.Linear(_projector1, _projector1Bias, _selected, _projected, TokensPerImage);
            be.Activate(_projectorActivation, _projected, _projected, TokensPerImage * _dim);
            if (own.ImageCount == own.Images.Count) own.Images.Add(be.Allocate(TokensPerImage * _dim));
            be.Linear(_projector2, _projector2Bias, _projected, own.Images[own.ImageCount++], TokensPerImage);
        }
    }

    public void ClearImages(IModelState state)
    {
        var own = Own(state);
        own.ImageCount = 0;
        own.Reset();
    }

    public void Forward(IModelState state, ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions)
    {
        var own = Own(state);
        int imageTokens = 0;
        foreach (int token in tokens)
        {
            if (token == ImageTokenId) imageTokens++;
        }
        // Without images, image tokens run as plain tokens (a text-only caller never needs to know about images).
        int available = own.ImageCount * TokensPerImage;
        if (imageTokens > 0 && own.ImageCount > 0 && own.ImageTokensFed + imageTokens > available)
            throw new ArgumentException(
                $"the prompt has {own.ImageTokensFed + imageTokens} image tokens, the {own.ImageCount} attached image(s) fill {available} ({TokensPerImage} each)");
        _text.Forward(own.Text, tokens, logits, allPositions, imageTokens == 0 ? null : (x, batch) => PlaceImageFeatures(own, x, batch));
    }

    public void Dispose() => _text.Dispose();

    /// <summary>Writes image features over the embeddings of a batch's image tokens; token k takes row k mod N of image k / N.</summary>
    private void PlaceImageFeatures(State state, ITensor x, ReadOnlySpan<int> batch)
    {
        int fed = state.ImageTokensFed;
        ImageFeatureRuns.Place(Backend, x, batch, ImageTokenId, _dim, ref fed,
            k => (k / TokensPerImage < state.ImageCount ? state.Images[k / TokensPerImage] : null, k % TokensPerImage, TokensPerImage));
        state.ImageTokensFed = fed;
    }

    private static State Own(IModelState state) =>
        state as State ?? throw new ArgumentException("the state was made by another model", nameof(state));
}
