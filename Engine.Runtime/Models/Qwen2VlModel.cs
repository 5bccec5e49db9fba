using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// Qwen2-VL (Qwen2VLForConditionalGeneration, the layout Qwen's checkpoints use: "model.", "lm_head.", "visual."):
/// a Qwen2 language model with multimodal RoPE — rope_scaling.mrope_section splits the rotary pairs among a token's
/// temporal, height and width positions, all the text position for text — and a dynamic-resolution vision tower
/// (<see cref="Qwen2VisionEncoder"/>). An image of gh×gw patches gives gh·gw / merge² image tokens; they sit at
/// (s, s + row, s + column) of the merged grid, s being the position the image's first token would have as text, and
/// the text after it continues from s + max(rows, columns) (transformers' get_rope_index).
/// Shapes: D = text width.
/// </summary>
public sealed class Qwen2VlModel : IMultimodalModel
{
    /// <summary>An attached image: its features [tokens][D] on the backend and its merged grid.</summary>
    private sealed record Image(ITensor Features, int Rows, int Columns)
    {
        public int Tokens => Rows * Columns;
    }

    /// <summary>The language model's cache, the attached images and how far the prompt has gone through them.</summary>
    private sealed class State(IModelState text) : IModelState
    {
        public IModelState Text { get; } = text;

        public List<Image> Images { get; } = [];

        public int ImageTokensFed { get; set; }

        /// <summary>Text position of the image being fed (its first token's), for an image split across batches.</summary>
        public int ImageStart { get; set; }

        public int Position => Text.Position;

        public void Reset()
        {
            Text.Reset();
            ImageTokensFed = 0;
        }
    }

    private readonly LlamaModel _text;
    private readonly Qwen2VisionEncoder _vision;
    private readonly int _dim;

    public ModelConfig Config { get; }
    public IBackend Backend { get; }
    public int MaxContext => _text.MaxContext;
    public long WeightBytesPerToken => _text.WeightBytesPerToken;
    public string WeightFormats => _text.WeightFormats;
    public ElementType? CacheType => _text.CacheType;
    public int ImageTokenId { get; }

    /// <summary>0: the count depends on the image's size (<see cref="ImageTokens"/>).</summary>
    public int TokensPerImage => 0;

    /// <summary>[channels, 0, 0]: any height and width that are multiples of <see cref="SizeFactor"/>.</summary>
    public IReadOnlyList<int> ImageShape { get; }

    /// <summary>Image sides must be multiples of patch_size · spatial_merge_size.</summary>
    public int SizeFactor => _vision.PatchSize * _vision.MergeSize;

    public Qwen2VlModel(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options)
    {
        Config = config;
        Backend = backend;
        if (tensors.TryGet("model.language_model.embed_tokens.weight", out _))
            throw new NotSupportedException(
                "Qwen2-VL tensors named 'model.language_model.*' (transformers 5's layout) are not supported; use the original layout ('model.layers.*', 'visual.*')");
        var top = ConfigSection.Root(config);
        if (!new[] { "rope_scaling", "rope_parameters" }.Any(key => top.Find(key) is { ValueKind: System.Text.Json.JsonValueKind.Object } s
                && s.TryGetProperty("mrope_section", out _)))
            throw new InvalidDataException("config.json: a Qwen2-VL model needs rope_scaling.mrope_section");
        ImageTokenId = top.Int("image_token_id");
        if (ImageTokenId < 0 || ImageTokenId >= config.VocabSize)
            throw new InvalidDataException($"config.json: image_token_id {ImageTokenId} is outside the vocabulary (0..{config.VocabSize - 1})");
        _text = new LlamaModel(config, tensors, backend, options);
        _dim = config.HiddenSize;
        var visionConfig = ConfigSection.Of(config.Raw, "vision_config");
        // A grid side is at most the context's image tokens times the merge size (the other side being one window).
        int merge = visionConfig.Positive("spatial_merge_size", 2);
        _vision = new Qwen2VisionEncoder(visionConfig, tensors, backend, "visual.", _text.MaxContext * merge);
        if (_vision.OutputWidth != _dim)
            throw new InvalidDataException($"config.json: vision_config.hidden_size {_vision.OutputWidth} must equal the text hidden_size {_dim}");
        ImageShape = [_vision.Channels, 0, 0];
        // The processor's prompt frames the image pads: <|vision_start|> ... <|vision_end|>.
        int[] Optional(string name) => top.OptionalInt(name) is { } id ? [id] : [];
        ImageFrame = (Optional("vision_start_token_id"), Optional("vision_end_token_id"));
    }

    public IModelState CreateState() => new State(_text.CreateState());

    public (int[] Before, int[] After) ImageFrame { get; }

    public int ImageTokens(ReadOnlySpan<int> imageShape)
    {
        var (rows, columns) = MergedGrid(imageShape);
        return rows * columns;
    }

    /// <summary>Rows and columns of merged patches (image tokens) of an image of [channels, height, width].</summary>
    private (int Rows, int Columns) MergedGrid(ReadOnlySpan<int> shape)
    {
        int factor = SizeFactor;
        if (shape.Length != 3 || shape[0] != _vision.Channels || shape[1] <= 0 || shape[2] <= 0 || shape[1] % factor != 0 || shape[2] % factor != 0)
            throw new ArgumentException(
                $"image shape [{string.Join(", ", shape.ToArray())}] must be [{_vision.Channels}, height, width] with sides positive multiples of {factor}");
        return (shape[1] / factor, shape[2] / factor);
    }

    public void AddImages(IModelState state, ReadOnlySpan<float> pixelValues, ReadOnlySpan<int> shape)
    {
        var own = Own(state);
        if (shape.Length is not (3 or 4))
            throw new ArgumentException($"pixel values shape [{string.Join(", ", shape.ToArray())}] must be [images, channels, height, width]");
        int count = shape.Length == 4 ? shape[0] : 1;
        var imageShape = shape[^3..];
        var (rows, columns) = MergedGrid(imageShape);
        int perImage = imageShape[0] * imageShape[1] * imageShape[2];
        if (count < 1 || pixelValues.Length != (long)count * perImage)
            throw new ArgumentException($"{pixelValues.Length} pixel values given, the shape [{string.Join(", ", shape.ToArray())}] needs {(long)count * perImage}");
        int m = _vision.MergeSize;
        for (int i = 0; i < count; i++)
        {
            float[] patches = Qwen2VlPatches.Flatten(pixelValues.Slice(i * perImage, perImage), imageShape[0], imageShape[1], imageShape[2],
                _vision.PatchSize, _vision.TemporalPatchSize, m);
            Attach(own, patches, 1, rows * m, columns * m);
        }
    }

    /// <summary>
    /// Attaches images given as the processor's output: <paramref name="patches"/> [Σ t·h·w][channels·temporal·p·p]
    /// (pixel_values) and <paramref name="gridThw"/> [images][3] (image_grid_thw).
    /// </summary>
    public void AddPatches(IModelState state, ReadOnlySpan<float> patches, ReadOnlySpan<int> gridThw)
    {
        var own = Own(state);
        if (gridThw.Length == 0 || gridThw.Length % 3 != 0)
            throw new ArgumentException($"image_grid_thw holds {gridThw.Length} numbers, not [images][3]");
        long needed = 0;
        for (int i = 0; i < gridThw.Length; i += 3) needed += (long)gridThw[i] * gridThw[i + 1] * gridThw[i + 2] * _vision.PatchLength;
        if (patches.Length != needed)
            throw new ArgumentException($"{patches.Length} pixel values given, image_grid_thw [{string.Join(", ", gridThw.ToArray())}] needs {needed} ({_vision.PatchLength} per patch)");
        int offset = 0;
        for (int i = 0; i < gridThw.Length; i += 3)
        {
            int length = gridThw[i] * gridThw[i + 1] * gridThw[i + 2] * _vision.PatchLength;
            Attach(own, patches.Slice(offset, length), gridThw[i], gridThw[i + 1], gridThw[i + 2]);
            offset += length;
        }
    }

    /// <summary>Image tokens of the processor's image_grid_thw [images][3]: t·h·w / merge² each.</summary>
    public int GridTokens(ReadOnlySpan<int> gridThw)
    {
        int m = _vision.MergeSize, total = 0;
        for (int i = 0; i + 2 < gridThw.Length; i += 3) total += gridThw[i] * gridThw[i + 1] * gridThw[i + 2] / (m * m);
        return total;
    }

    /// <summary>Encodes one image's patches and keeps its features.</summary>
    private void Attach(State state, ReadOnlySpan<float> patches, int gridT, int gridH, int gridW)
    {
        var features = _vision.Encode(patches, gridT, gridH, gridW);
        int rows = gridH / _vision.MergeSize, columns = gridW / _vision.MergeSize;
        var copy = Backend.Allocate(rows * columns * _dim);
        Backend.Copy(features, 0, copy, 0, rows * columns * _dim);
        state.Images.Add(new Image(copy, rows, columns));
    }

    public void ClearImages(IModelState state)
    {
        var own = Own(state);
        own.Images.Clear();
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
        if (imageTokens == 0 || own.Images.Count == 0)
        {
            _text.Forward(own.Text, tokens, logits, allPositions);
            return;
        }
        int available = own.Images.Sum(image => image.Tokens);
        if (own.ImageTokensFed + imageTokens > available)
            throw new ArgumentException(
                $"the prompt has {own.ImageTokensFed + imageTokens} image tokens, the {own.Images.Count} attached image(s) fill {available} ({string.Join(", ", own.Images.Select(i => i.Tokens))})");
        _text.Forward(own.Text, tokens, logits, allPositions, (x, batch) => PlaceImageFeatures(own, x, batch),
            (batch, start, positions) => Positions(own, batch, start, positions));
    }

    public void Dispose() => _text.Dispose();

    /// <summary>The image (and its row) that the image token after <paramref name="fed"/> fed ones takes.</summary>
    private static (T Image, int Row) Locate<T>(IReadOnlyList<T> images, Func<T, int> tokens, int fed)
    {
        foreach (var image in images)
        {
            if (fed < tokens(image)) return (image, fed);
            fed -= tokens(image);
        }
        throw new InvalidOperationException("image token beyond the attached images");
    }

    private void Positions(State state, ReadOnlySpan<int> batch, int start, Span<int> positions)
    {
        int imageStart = state.ImageStart;
        RopeIndex(batch, ImageTokenId, [.. state.Images.Select(i => (i.Rows, i.Columns))], state.ImageTokensFed, start, ref imageStart, positions);
        state.ImageStart = imageStart;
    }

    /// <summary>
    /// Multimodal RoPE positions [tokens][3] of a batch (transformers' get_rope_index, fed piece by piece): text at
    /// (p, p, p) counting from <paramref name="start"/>; the image tokens after <paramref name="fed"/> earlier ones at
    /// (s, s + row, s + column) of their image's merged grid, s the position of the image's first token
    /// (<paramref name="imageStart"/>, kept for an image split across batches); text after an image from s + max(rows, columns).
    /// </summary>
    internal static void RopeIndex(ReadOnlySpan<int> batch, int imageTokenId, IReadOnlyList<(int Rows, int Columns)> grids, int fed, int start,
        ref int imageStart, Span<int> positions)
    {
        int next = start;
        for (int t = 0; t < batch.Length; t++)
        {
            if (batch[t] != imageTokenId)
            {
                positions[t * 3] = positions[t * 3 + 1] = positions[t * 3 + 2] = next++;
                continue;
            }
            var ((rows, columns), row) = Locate(grids, g => g.Rows * g.Columns, fed++);
            if (row == 0) imageStart = next;
            positions[t * 3] = imageStart;
            positions[t * 3 + 1] = imageStart + row / columns;
            positions[t * 3 + 2] = imageStart + row % columns;
            if (row == rows * columns - 1) next = imageStart + Math.Max(rows, columns);
        }
    }

    /// <summary>Writes image features over the embeddings of a batch's image tokens, each image's tokens in order.</summary>
    private void PlaceImageFeatures(State state, ITensor x, ReadOnlySpan<int> batch)
    {
        int fed = state.ImageTokensFed;
        ImageFeatureRuns.Place(Backend, x, batch, ImageTokenId, _dim, ref fed, k =>
        {
            var (image, row) = Locate(state.Images, i => i.Tokens, k);
            return (image.Features, row, image.Tokens);
        });
        state.ImageTokensFed = fed;
    }

    private static State Own(IModelState state) =>
        state as State ?? throw new ArgumentException("the state was made by another model", nameof(state));
}
