namespace Engine.Runtime.Benchmarks;

/// <summary>
/// A config.json at a 1B-class shape for each architecture family, for <c>engine bench --arch</c> with random weights:
/// the shapes of public checkpoints (named beside each), so speed is measured where it matters without downloads.
/// </summary>
public static class BenchmarkModels
{
    private static readonly Dictionary<string, string> Configs = new(StringComparer.OrdinalIgnoreCase)
    {
        // TinyLlama-1.1B
        ["llama"] = """
            {"model_type": "llama", "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
             "num_attention_heads": 32, "num_key_value_heads": 4, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
             "max_position_embeddings": 2048, "tie_word_embeddings": false}
            """,
        // Qwen2.5-1.5B
        ["qwen2"] = """
            {"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
             "num_attention_heads": 12, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
             "max_position_embeddings": 32768, "tie_word_embeddings": true}
            """,
        // Mixtral's layout at 1.1B total, 0.4B active (8 experts, top-2)
        ["mixtral"] = """
            {"model_type": "mixtral", "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 1408, "num_hidden_layers": 16,
             "num_attention_heads": 16, "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2,
             "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "max_position_embeddings": 4096, "tie_word_embeddings": false}
            """,
        // Qwen3-MoE's layout at 1.5B total (16 experts, top-4, q/k norms)
        ["qwen3_moe"] = """
            {"model_type": "qwen3_moe", "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144, "moe_intermediate_size": 768,
             "num_hidden_layers": 16, "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 128, "num_experts": 16,
             "num_local_experts": 16, "num_experts_per_tok": 4, "norm_topk_prob": true, "decoder_sparse_step": 1, "mlp_only_layers": [],
             "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": false}
            """,
        // state-spaces/mamba-1.4b
        ["mamba"] = """
            {"model_type": "mamba", "vocab_size": 50280, "hidden_size": 2048, "intermediate_size": 4096, "num_hidden_layers": 48,
             "state_size": 16, "conv_kernel": 4, "expand": 2, "time_step_rank": 128, "use_bias": false, "use_conv_bias": true,
             "layer_norm_epsilon": 1e-5, "residual_in_fp32": true, "tie_word_embeddings": true}
            """,
        // state-spaces/mamba2-1.3b
        ["mamba2"] = """
            {"model_type": "mamba2", "vocab_size": 50288, "hidden_size": 2048, "num_hidden_layers": 48, "state_size": 128,
             "conv_kernel": 4, "expand": 2, "head_dim": 64, "num_heads": 64, "n_groups": 1, "chunk_size": 256,
             "time_step_rank": 128, "time_step_limit": [0.0, 1e30], "use_bias": false, "use_conv_bias": true,
             "layer_norm_epsilon": 1e-5, "residual_in_fp32": true, "tie_word_embeddings": true}
            """,
        // RWKV/rwkv-4-1b5-pile
        ["rwkv"] = """
            {"model_type": "rwkv", "vocab_size": 50277, "hidden_size": 2048, "attention_hidden_size": 2048, "intermediate_size": 8192,
             "num_hidden_layers": 24, "context_length": 4096, "layer_norm_epsilon": 1e-5, "rescale_every": 6, "tie_word_embeddings": false}
            """,
        // RWKV-6 World 1.6B
        ["rwkv6"] = """
            {"architecture": "rwkv6", "version": 6, "vocab_size": 65536, "n_embd": 2048, "n_layer": 24, "head_size": 64, "n_head": 32,
             "dim_att": 2048, "dim_ffn": 7168, "d_mix_lora": 32, "d_decay_lora": 64, "layer_norm_epsilon": 1e-5,
             "group_norm_epsilon": 0.00064, "head_size_divisor": 8}
            """,
        // RWKV-7 World 1.5B
        ["rwkv7"] = """
            {"architecture": "rwkv7", "version": 7, "vocab_size": 65536, "n_embd": 2048, "n_layer": 24, "head_size": 64, "n_head": 32,
             "dim_att": 2048, "dim_ffn": 8192, "d_decay_lora": 96, "d_aaa_lora": 96, "d_mv_lora": 64, "d_gate_lora": 256,
             "layer_norm_epsilon": 1e-5, "group_norm_epsilon": 0.00064, "layer0_has_value_residual_params": false}
            """,
        // TinyLlama-1.1B behind a CLIP ViT-B/32 at 224 px (49 image tokens)
        ["llava"] = """
            {"model_type": "llava", "image_token_index": 32000, "projector_hidden_act": "gelu", "multimodal_projector_bias": true,
             "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "tie_word_embeddings": false,
             "text_config": {"model_type": "llama", "vocab_size": 32064, "hidden_size": 2048, "intermediate_size": 5632,
               "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4, "rms_norm_eps": 1e-5,
               "rope_theta": 10000.0, "max_position_embeddings": 2048, "tie_word_embeddings": false},
             "vision_config": {"model_type": "clip_vision_model", "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
               "num_attention_heads": 12, "image_size": 224, "patch_size": 32, "num_channels": 3, "hidden_act": "quick_gelu",
               "layer_norm_eps": 1e-5}}
            """,
    };

    public static IReadOnlyCollection<string> Names => Configs.Keys;

    /// <summary>The config.json text of an architecture's benchmark shape.</summary>
    public static string Config(string architecture) =>
        Configs.TryGetValue(architecture, out string? json)
            ? json
            : throw new ArgumentException($"no benchmark shape for architecture '{architecture}' (known: {string.Join(", ", Configs.Keys)})");
}
