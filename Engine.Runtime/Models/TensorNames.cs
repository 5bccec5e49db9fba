using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>What a tensor is to a quantizer: the roles that get a format other than the target, or a layer's weight.</summary>
public enum TensorRole
{
    /// <summary>A token embedding table: one row read per token, kept at 8 bits by default.</summary>
    Embedding,

    /// <summary>The output head (absent when tied to the embedding).</summary>
    Head,

    /// <summary>A mixture-of-experts router: a few rows that pick experts, kept f32 (as llama.cpp does).</summary>
    Router,

    /// <summary>A multimodal projector from the vision tower into the language model.</summary>
    Projector,

    /// <summary>A vision tower's weight: its inputs are image features, which text calibration does not reach.</summary>
    VisionTower,

    /// <summary>Anything else: a decoder layer's weight, a norm.</summary>
    Other,
}

/// <summary>
/// Where each kind of tensor of an architecture lives, as name globs (<see cref="NameGlob"/>), declared once with its
/// registry entry: a quantizer asks here instead of guessing from names, so a new architecture says where its
/// embedding is before anything can quantize it.
/// </summary>
public sealed record TensorNames
{
    /// <summary>Token embedding tables.</summary>
    public required NameGlob[] Embeddings { get; init; }

    /// <summary>Output heads.</summary>
    public required NameGlob[] Heads { get; init; }

    /// <summary>A decoder layer's tensors, with the layer number in a <c>{layer}</c> field (layers run in that order).</summary>
    public required NameGlob[] Layers { get; init; }

    public NameGlob[] Routers { get; init; } = [];

    public NameGlob[] Projectors { get; init; } = [];

    public NameGlob[] VisionTowers { get; init; } = [];

    /// <summary>The role of a tensor; a projector inside a vision tower's namespace is a projector.</summary>
    public TensorRole RoleOf(string name) =>
        Embeddings.Any(g => g.Matches(name)) ? TensorRole.Embedding
        : Heads.Any(g => g.Matches(name)) ? TensorRole.Head
        : Routers.Any(g => g.Matches(name)) ? TensorRole.Router
        : Projectors.Any(g => g.Matches(name)) ? TensorRole.Projector
        : VisionTowers.Any(g => g.Matches(name)) ? TensorRole.VisionTower
        : TensorRole.Other;

    /// <summary>The decoder layer a tensor belongs to, or null (embedding, head, final norm, vision tower).</summary>
    public int? LayerOf(string name)
    {
        if (RoleOf(name) is TensorRole.VisionTower or TensorRole.Projector) return null;
        foreach (var glob in Layers)
        {
            if (glob.Layer(name) is int layer) return layer;
        }
        return null;
    }

    public static NameGlob[] Globs(params string[] globs) => [.. globs.Select(g => new NameGlob(g))];

    /// <summary>The Llama family (Mistral, Qwen2/3, and the MoE models' Mixtral, Qwen-MoE and DeepSeek routers).</summary>
    public static TensorNames Transformer { get; } = new()
    {
        Embeddings = Globs("model.embed_tokens.weight"),
        Heads = Globs("lm_head.weight"),
        Layers = Globs("model.layers.{layer}.*"),
        Routers = Globs("model.layers.*.mlp.gate.weight", "model.layers.*.block_sparse_moe.gate.weight", "model.layers.*.mlp.shared_expert_gate.weight"),
    };

    /// <summary>LLaVA: a Llama under "language_model.", a CLIP tower under "vision_tower.", the projector between.</summary>
    public static TensorNames Llava { get; } = new()
    {
        Embeddings = Globs("language_model.model.embed_tokens.weight"),
        Heads = Globs("language_model.lm_head.weight"),
        Layers = Globs("language_model.model.layers.{layer}.*"),
        Projectors = Globs("multi_modal_projector.*"),
        VisionTowers = Globs("vision_tower.*"),
    };

    /// <summary>Qwen2-VL in both checkpoint layouts ("model." or "model.language_model."), its tower and merger under "visual.".</summary>
    public static TensorNames Qwen2Vl { get; } = new()
    {
        Embeddings = Globs("model.embed_tokens.weight", "model.language_model.embed_tokens.weight"),
        Heads = Globs("lm_head.weight"),
        Layers = Globs("model.layers.{layer}.*", "model.language_model.layers.{layer}.*"),
        Projectors = Globs("visual.merger.*", "model.visual.merger.*"),
        VisionTowers = Globs("visual.*", "model.visual.*"),
    };

    /// <summary>RWKV-4/6/7 in Hugging Face ("rwkv.") and BlinkDL layouts.</summary>
    public static TensorNames Rwkv { get; } = new()
    {
        Embeddings = Globs("rwkv.embeddings.weight", "emb.weight"),
        Heads = Globs("head.weight"),
        Layers = Globs("rwkv.blocks.{layer}.*", "blocks.{layer}.*"),
    };

    /// <summary>Mamba and Mamba-2.</summary>
    public static TensorNames Mamba { get; } = new()
    {
        Embeddings = Globs("backbone.embeddings.weight"),
        Heads = Globs("lm_head.weight"),
        Layers = Globs("backbone.layers.{layer}.*"),
    };
}
