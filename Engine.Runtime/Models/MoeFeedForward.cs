using System.Text.Json;
using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// A mixture-of-experts feed-forward block (Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-MoE): a router [E, D] picks k
/// of E SwiGLU experts per token, their outputs are summed with the routing weights, plus an optional shared expert
/// (Qwen2-MoE's, gated by sigmoid(shared_expert_gate · x); DeepSeek's n_shared_experts, ungated).
/// The experts of each projection are one stacked matrix, so a decoded token reads only its k experts' rows, chosen
/// on the device; a batch multiplies each expert's tokens together (the routing groups them, also on the device).
/// Routing: softmax over the E logits, the top k, renormalised over the chosen when the config asks (Mixtral always,
/// which equals a softmax over the top-k logits), times routed_scaling_factor.
/// </summary>
internal sealed class MoeFeedForward : FeedForward
{
    private readonly IWeightMatrix _router;              // [E, D]
    private readonly IWeightMatrix _gates, _ups, _downs; // [E, Fe, D], [E, Fe, D], [E, D, Fe]
    private readonly SwiGluFeedForward? _shared;
    private readonly IWeightMatrix? _sharedGate;          // [1, D]
    private readonly int _expertRows, _dim;
    private readonly bool _normalize;
    private readonly float _scale;

    private MoeFeedForward(IWeightMatrix router, IWeightMatrix gates, IWeightMatrix ups, IWeightMatrix downs, SwiGluFeedForward? shared,
        IWeightMatrix? sharedGate, int experts, int k, int expertRows, int dim, bool normalize, float scale)
    {
        (_router, _gates, _ups, _downs, _shared, _sharedGate) = (router, gates, ups, downs, shared, sharedGate);
        (ExpertCount, ExpertsPerToken, _expertRows, _dim, _normalize, _scale) = (experts, k, expertRows, dim, normalize, scale);
    }

    public int ExpertCount { get; }

    public int ExpertsPerToken { get; }

    public override int Width => Math.Max(ExpertsPerToken * _expertRows, _shared?.Width ?? 0);

    public override long BytesPerToken =>
        _router.ByteSize + (_sharedGate?.ByteSize ?? 0) + (_shared?.BytesPerToken ?? 0)
        + (_gates.ByteSize + _ups.ByteSize + _downs.ByteSize) * ExpertsPerToken / ExpertCount;

    public override IEnumerable<IWeightMatrix> Matrices =>
        new[] { _router, _gates, _ups, _downs }.Concat(_shared?.Matrices ?? []).Concat(_sharedGate is null ? [] : [_sharedGate]);

    /// <summary>Whether the config makes layer <paramref name="layer"/> a mixture of experts.</summary>
    public static bool IsSparseLayer(ModelConfig config, int layer)
    {
        if (config.Raw is null) return false;   // llama2.c checkpoints
        var raw = ConfigSection.Root(config);
        if (ExpertCountOf(raw) is not > 0) return false;
        // DeepSeek: dense below first_k_dense_replace, then every moe_layer_freq-th layer.
        if (raw.OptionalInt("first_k_dense_replace") is int firstSparse)
            return layer >= firstSparse && layer % Math.Max(1, raw.Int("moe_layer_freq", 1)) == 0;
        // Qwen-MoE: dense in mlp_only_layers, else every decoder_sparse_step-th layer.
        if (raw.Find("mlp_only_layers") is { ValueKind: JsonValueKind.Array } dense && dense.EnumerateArray().Any(v => v.TryGetInt32(out int i) && i == layer))
            return false;
        int step = raw.Int("decoder_sparse_step", 1);
        return step > 0 && (layer + 1) % step == 0;
    }

    /// <summary>The router tensor's prefix in a layer: Mixtral's block_sparse_moe, the others' mlp.</summary>
    public static string RouterPrefix(ModelConfig config) =>
        config.Architecture.Equals("mixtral", StringComparison.OrdinalIgnoreCase) ? "block_sparse_moe." : "mlp.";

    /// <summary>
    /// A sparse layer's experts, and its shared expert(s) when the config has them (Qwen2-MoE's
    /// shared_expert_intermediate_size, with its gate; DeepSeek's n_shared_experts).
    /// </summary>
    public static MoeFeedForward Load(ModelConfig config, WeightLoader loader, string layerPrefix)
    {
        var raw = ConfigSection.Root(config);
        bool mixtral = RouterPrefix(config) == "block_sparse_moe.";
        string prefix = layerPrefix + RouterPrefix(config);
        int dim = config.HiddenSize;
        int experts = ExpertCountOf(raw) ?? throw new InvalidDataException(
            $"'{prefix}gate.weight' is a mixture-of-experts router, but the config names no expert count (num_local_experts, num_experts or n_routed_experts)");
        int k = raw.Int("num_experts_per_tok");
        if (experts <= 0 || k <= 0 || k > experts)
            throw new InvalidDataException($"the config routes each token to {k} of {experts} experts");
        int expertRows = raw.Int("moe_intermediate_size", config.IntermediateSize);
        if (expertRows <= 0) throw new InvalidDataException($"expert size {expertRows} is not positive");

        string[] Names(string projection) =>
            [.. Enumerable.Range(0, experts).Select(e => $"{prefix}experts.{e}.{projection}.weight")];
        var router = loader.Matrix(prefix + "gate.weight", experts, dim);
        var gates = loader.Experts(Names(mixtral ? "w1" : "gate_proj"), expertRows, dim);
        var ups = loader.Experts(Names(mixtral ? "w3" : "up_proj"), expertRows, dim);
        var downs = loader.Experts(Names(mixtral ? "w2" : "down_proj"), dim, expertRows);

        SwiGluFeedForward? shared = null;
        IWeightMatrix? sharedGate = null;
        if (raw.Int("shared_expert_intermediate_size", 0) is > 0 and int size)
        {
            shared = SwiGluFeedForward.Load(loader, prefix + "shared_expert.", size, dim);
            sharedGate = loader.Matrix(prefix + "shared_expert_gate.weight", 1, dim);
        }
        else if (raw.Int("n_shared_experts", 0) is > 0 and int count)
        {
            shared = SwiGluFeedForward.Load(loader, prefix + "shared_experts.", expertRows * count, dim);
        }

        // Mixtral always renormalises; DeepSeek only with more than one expert per token; Qwen whenever asked.
        bool normalize = mixtral
            || (raw.Bool("norm_topk_prob", false) && (k > 1 || !config.Architecture.Equals("deepseek", StringComparison.OrdinalIgnoreCase)));
        float scale = (float)raw.Double("routed_scaling_factor", 1.0);
        return new MoeFeedForward(router, gates, ups, downs, shared, sharedGate, experts, k, expertRows, dim, normalize, scale);
    }

    public override void Forward(IBackend backend, ITensor input, ITensor output, int tokens, FeedForwardScratch scratch) =>
        Run(backend, input, output, tokens, scratch, accumulate: false);

    /// <summary>x += MoE(RMSNorm(x)): the combination adds into the residual stream.</summary>
    public override void AddTo(IBackend backend, ITensor x, ITensor norm, float eps, int tokens, FeedForwardScratch scratch)
    {
        backend.RmsNorm(x, norm, scratch.Normed, tokens, _dim, eps);
        Run(backend, scratch.Normed, x, tokens, scratch, accumulate: true);
    }

    private void Run(IBackend backend, ITensor input, ITensor output, int tokens, FeedForwardScratch scratch, bool accumulate)
    {
        var routing = scratch.Routing!;
        var expertOutputs = scratch.ExpertOutputs!;
        int k = ExpertsPerToken;
        backend.Linear(_router, null, input, scratch.RouterLogits!, tokens);
        backend.MoeRoute(scratch.RouterLogits!, routing, tokens, ExpertCount, k, _normalize, _scale);
        backend.ExpertLinear(_gates, ExpertCount, routing, input, scratch.Gate, tokens, k, inputPerSlot: false);
        backend.ExpertLinear(_ups, ExpertCount, routing, input, scratch.Up, tokens, k, inputPerSlot: false);
        backend.SwiGlu(scratch.Gate, scratch.Up, scratch.Gate, tokens * k * _expertRows);
        backend.ExpertLinear(_downs, ExpertCount, routing, scratch.Gate, expertOutputs, tokens, k, inputPerSlot: true);
        if (_shared is not null)
        {
            _shared.Forward(backend, input, scratch.Shared!, tokens, scratch);
            if (_sharedGate is not null)
            {
                backend.Linear(_sharedGate, null, input, scratch.SharedGate!, tokens);
                backend.Activate(Activation.Sigmoid, scratch.SharedGate!, scratch.SharedGate!, tokens);
            }
        }
        backend.MoeCombine(expertOutputs, routing, _shared is null ? null : scratch.Shared, _sharedGate is null ? null : scratch.SharedGate,
            output, tokens, k, _dim, accumulate);
    }

    private static int? ExpertCountOf(ConfigSection raw) =>
        raw.OptionalInt("num_local_experts") ?? raw.OptionalInt("num_experts") ?? raw.OptionalInt("n_routed_experts");
}
