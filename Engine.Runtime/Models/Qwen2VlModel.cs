using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// Qwen2-VL (Qwen2VLForConditionalGeneration, the layout Qwen's checkpoints use: "model.", "lm_head.", "visual."):
/// a Qwen2 language model with multimodal RoPE — rope_scaling.mrope_section splits the rotary pairs among a token's
/// temporal, height and width positions, which are all the text position for text — and a vision tower.
/// </summary>
public sealed class Qwen2VlModel : ILanguageModel
{
    private readonly LlamaModel _text;

    public ModelConfig Config { get; }
    public IBackend Backend { get; }
    public int MaxContext => _text.MaxContext;
    public long WeightBytesPerToken => _text.WeightBytesPerToken;
    public string WeightFormats => _text.WeightFormats;

    public Qwen2VlModel(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options)
    {
        Config = config;
        Backend = backend;
        if (tensors.TryGet("model.language_model.embed_tokens.weight", out _))
            throw new NotSupportedException(
                "Qwen2-VL tensors named 'model.language_model.*' (transformers 5's layout) are not supported; use the original layout ('model.layers.*', 'visual.*')");
        if (config.Raw is null || !HasMropeSection(config.Raw.Value))
            throw new InvalidDataException("config.json: a Qwen2-VL model needs rope_scaling.mrope_section");
        _text = new LlamaModel(config, tensors, backend, options);
    }

    public IModelState CreateState() => _text.CreateState();

    public void Forward(IModelState state, ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions) =>
        _text.Forward(state, tokens, logits, allPositions);

    public void Dispose() => _text.Dispose();

    private static bool HasMropeSection(System.Text.Json.JsonElement root) =>
        new[] { "rope_scaling", "rope_parameters" }.Any(key => root.TryGetProperty(key, out var s)
            && s.ValueKind == System.Text.Json.JsonValueKind.Object && s.TryGetProperty("mrope_section", out _));
}
