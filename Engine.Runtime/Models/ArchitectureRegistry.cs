using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// The one map from an architecture name (Hugging Face <c>model_type</c>) to the class that runs it.
/// Adding an architecture is one file in this folder and one line here.
/// </summary>
public static class ArchitectureRegistry
{
    private delegate ILanguageModel Factory(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options);

    private static readonly Dictionary<string, Factory> Factories = new(StringComparer.OrdinalIgnoreCase)
    {
        ["llava"] = (c, t, b, o) => new LlavaModel(c, t, b, o),
        ["llama"] = (c, t, b, o) => new LlamaModel(c, t, b, o),
        ["mistral"] = (c, t, b, o) => new LlamaModel(c, t, b, o),
        ["qwen2"] = (c, t, b, o) => new LlamaModel(c, t, b, o),
        ["qwen2_vl"] = (c, t, b, o) => new Qwen2VlModel(c, t, b, o),
        ["qwen3"] = (c, t, b, o) => new LlamaModel(c, t, b, o),
        ["rwkv"] = (c, t, b, o) => new Rwkv4Model(c, t, b, o),
        ["rwkv6"] = (c, t, b, o) => new Rwkv6Model(c, t, b, o),
        ["rwkv7"] = (c, t, b, o) => new Rwkv7Model(c, t, b, o),
        ["mamba"] = (c, t, b, o) => new MambaModel(c, t, b, o),
        ["mamba2"] = (c, t, b, o) => new Mamba2Model(c, t, b, o),
        ["mixtral"] = (c, t, b, o) => new LlamaModel(c, t, b, o),
        ["qwen2_moe"] = (c, t, b, o) => new LlamaModel(c, t, b, o),
        ["qwen3_moe"] = (c, t, b, o) => new LlamaModel(c, t, b, o),
        ["deepseek"] = (c, t, b, o) => new LlamaModel(c, t, b, o),
    };

    /// <summary>Architectures that carry a fixed-size recurrent state instead of a KV cache (no position embedding, no context limit).</summary>
    private static readonly HashSet<string> Recurrent = new(StringComparer.OrdinalIgnoreCase) { "rwkv", "rwkv6", "rwkv7", "mamba", "mamba2" };

    public static IReadOnlyCollection<string> Names => Factories.Keys;

    public static bool IsRecurrent(string architecture) => Recurrent.Contains(architecture);

    public static ILanguageModel Create(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options) =>
        Factories.TryGetValue(config.Architecture, out var factory)
            ? factory(config, tensors, backend, options)
            : throw new NotSupportedException(
                $"architecture '{config.Architecture}' is not supported (supported: {string.Join(", ", Factories.Keys.Order())})");
}
