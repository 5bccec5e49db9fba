using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// The one map from an architecture name (Hugging Face <c>model_type</c>) to the class that runs it.
/// Adding an architecture is one file in this folder and one entry here, which also says where its tensors are.
/// </summary>
public static class ArchitectureRegistry
{
    private delegate ILanguageModel Factory(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options);

    /// <summary>An architecture's facts: the class that runs it, where its kinds of tensors are, whether it is recurrent.</summary>
    private sealed record Entry(Factory Create, TensorNames Names, bool Recurrent = false);

    private static readonly Entry Llama = new((c, t, b, o) => new LlamaModel(c, t, b, o), TensorNames.Transformer);
    private static readonly Entry Rwkv4 = new((c, t, b, o) => new Rwkv4Model(c, t, b, o), TensorNames.Rwkv, Recurrent: true);

    private static readonly Dictionary<string, Entry> Entries = new(StringComparer.OrdinalIgnoreCase)
    {
        ["llava"] = new((c, t, b, o) => new LlavaModel(c, t, b, o), TensorNames.Llava),
        ["llama"] = Llama,
        ["mistral"] = Llama,
        ["qwen2"] = Llama,
        ["qwen2_vl"] = new((c, t, b, o) => new Qwen2VlModel(c, t, b, o), TensorNames.Qwen2Vl),
        ["qwen3"] = Llama,
        ["rwkv"] = Rwkv4,
        ["rwkv6"] = new((c, t, b, o) => new Rwkv6Model(c, t, b, o), TensorNames.Rwkv, Recurrent: true),
        ["rwkv7"] = new((c, t, b, o) => new Rwkv7Model(c, t, b, o), TensorNames.Rwkv, Recurrent: true),
        ["mamba"] = new((c, t, b, o) => new MambaModel(c, t, b, o), TensorNames.Mamba, Recurrent: true),
        ["mamba2"] = new((c, t, b, o) => new Mamba2Model(c, t, b, o), TensorNames.Mamba, Recurrent: true),
        ["mixtral"] = Llama,
        ["qwen2_moe"] = Llama,
        ["qwen3_moe"] = Llama,
        ["deepseek"] = Llama,
    };

    public static IReadOnlyCollection<string> Names => Entries.Keys;

    /// <summary>Architectures that carry a fixed-size recurrent state instead of a KV cache (no position embedding, no context limit).</summary>
    public static bool IsRecurrent(string architecture) => Entries.TryGetValue(architecture, out var entry) && entry.Recurrent;

    /// <summary>Where the architecture's embeddings, heads, routers, projectors, vision tower and layers are.</summary>
    public static TensorNames TensorNamesOf(string architecture) => Find(architecture).Names;

    public static ILanguageModel Create(ModelConfig config, ITensorSource tensors, IBackend backend, ModelOptions options) =>
        Find(config.Architecture).Create(config, tensors, backend, options);

    private static Entry Find(string architecture) =>
        Entries.TryGetValue(architecture, out var entry)
            ? entry
            : throw new NotSupportedException($"architecture '{architecture}' is not supported (supported: {string.Join(", ", Entries.Keys.Order())})");
}
