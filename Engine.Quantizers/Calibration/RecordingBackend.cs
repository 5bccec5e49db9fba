using System.Runtime.CompilerServices;
using Engine.Formats;
using Engine.Runtime;

namespace Engine.Quantizers.Calibration;

/// <summary>
/// A backend that runs every op on an inner backend and, for the weight matrices a calibration asks about, adds each
/// product's input to that matrix's <see cref="InputStatistics"/>: the input as the matrix sees it (after a fused
/// RMSNorm), and for expert stacks the rows each expert was routed. Matrices are known by the tensor names they were
/// uploaded under, so the model must load them unjoined (<see cref="ModelOptions.JoinMatrices"/> off). Consecutive
/// products of one input (q, k, v; gate, up), with nothing written to it between them, share one statistics object,
/// summed once.
/// For cross statistics two of them share a queue: the full-precision model's backend keeps its product inputs in
/// <see cref="KeptInputs"/> (and sums nothing), then the quantized model's backend, run on the same tokens, pairs each
/// of its product inputs with the next of them (<see cref="FullPrecisionInputs"/>).
/// </summary>
internal sealed class RecordingBackend(IBackend inner, Func<string, bool> wanted) : IBackend
{
    private readonly ConditionalWeakTable<IWeightMatrix, string[]> _names = [];
    private readonly Dictionary<ITensor, float[]> _normWeights = new(ReferenceEqualityComparer.Instance);
    private (ITensor X, ITensor? Norm, int Tokens, InputStatistics? Statistics)? _lastInput;

    /// <summary>Statistics by tensor name, for every wanted matrix that ran (none when the inputs are kept instead).</summary>
    public Dictionary<string, InputStatistics> Statistics { get; } = new(StringComparer.Ordinal);

    /// <summary>When set, each distinct product input ([tokens][columns]) is added here instead of to statistics.</summary>
    public Queue<float[]>? KeptInputs { get; init; }

    /// <summary>When set, each product input is paired with the next of these into the cross moment (dense products only).</summary>
    public Queue<float[]>? FullPrecisionInputs { get; init; }

    public string Name => inner.Name;
    public string DeviceName => inner.DeviceName;

    public int RuntimePrecision
    {
        get => inner.RuntimePrecision;
        set => inner.RuntimePrecision = value;
    }

    public IWeightMatrix UploadMatrix(TensorInfo info, ReadOnlySpan<byte> data, ITensorSource? shared = null) =>
        Named(inner.UploadMatrix(info, data, shared), [info.Name]);

    public IWeightMatrix UploadExperts(IReadOnlyList<TensorInfo> experts, IReadOnlyList<byte[]> data, ITensorSource? shared = null) =>
        Named(inner.UploadExperts(experts, data, shared), [.. experts.Select(e => e.Name)]);

    public void Linear(IWeightMatrix weight, ITensor? bias, ITensor x, ITensor y, int tokens, ProductFusion fusion = default)
    {
        if (_names.TryGetValue(weight, out var names) && wanted(names[0]))
        {
            if (_lastInput is not { } last || last.X != x || last.Norm != fusion.Norm || last.Tokens != tokens)
            {
                var input = new float[tokens * weight.Columns];
                inner.Read(x, input);
                if (fusion.Norm is { } norm) RmsNorm(input, weight.Columns, NormWeight(norm), fusion.NormEps);
                InputStatistics? statistics = null;
                if (KeptInputs is { } kept) kept.Enqueue(input);
                else
                {
                    statistics = Statistics.TryGetValue(names[0], out var existing) ? existing : new InputStatistics(weight.Columns);
                    statistics.Add(input, tokens);
                    if (FullPrecisionInputs is { } paired) statistics.AddCross(FullPrecisionInput(paired, names[0], input.Length), input, tokens);
                }
                last = (x, fusion.Norm, tokens, statistics);
                _lastInput = last;
            }
            if (last.Statistics is { } recorded) Statistics[names[0]] = recorded;
        }
        Wrote(y);
        inner.Linear(weight, bias, x, y, tokens, fusion);
    }

    public void ExpertLinear(IWeightMatrix experts, int expertCount, ITensor routing, ITensor x, ITensor y, int tokens, int k, bool inputPerSlot)
    {
        Wrote(y);
        if (_names.TryGetValue(experts, out var names) && names.Length == expertCount && names.Any(wanted))
        {
            var table = new float[MoeRouting.Length(tokens, k, expertCount)];
            inner.Read(routing, table);
            int columns = experts.Columns;
            var input = new float[(inputPerSlot ? tokens * k : tokens) * columns];
            inner.Read(x, input);
            var rows = new List<int>[expertCount];
            for (int slot = 0; slot < tokens * k; slot++)
            {
                int expert = (int)table[MoeRouting.Expert(slot)];
                (rows[expert] ??= []).Add(inputPerSlot ? slot : slot / k);
            }
            for (int e = 0; e < expertCount; e++)
            {
                if (!wanted(names[e])) continue;
                if (!Statistics.TryGetValue(names[e], out var statistics)) Statistics[names[e]] = statistics = new InputStatistics(columns);
                if (rows[e] is not { } routed) continue;
                var gathered = new float[routed.Count * columns];
                for (int i = 0; i < routed.Count; i++) input.AsSpan(routed[i] * columns, columns).CopyTo(gathered.AsSpan(i * columns));
                statistics.Add(gathered, routed.Count);
            }
        }
        inner.ExpertLinear(experts, expertCount, routing, x, y, tokens, k, inputPerSlot);
    }

    /// <summary>The full-precision model's input of the same product, which must have run the same products on the same tokens.</summary>
    private static float[] FullPrecisionInput(Queue<float[]> inputs, string tensor, int length)
    {
        if (!inputs.TryDequeue(out var input) || input.Length != length)
            throw new InvalidOperationException($"'{tensor}': the full-precision model did not run this product on the same tokens as the quantized model");
        return input;
    }

    private IWeightMatrix Named(IWeightMatrix matrix, string[] names)
    {
        _names.AddOrUpdate(matrix, names);
        return matrix;
    }

    private float[] NormWeight(ITensor norm)
    {
        if (!_normWeights.TryGetValue(norm, out var weight))
        {
            weight = new float[norm.Length];
            inner.Read(norm, weight);
            _normWeights[norm] = weight;
        }
        return weight;
    }

    /// <summary>x / sqrt(mean(x²) + eps) · weight per row, as the fused product computes it.</summary>
    private static void RmsNorm(float[] x, int columns, float[] weight, float eps)
    {
        for (int start = 0; start < x.Length; start += columns)
        {
            var row = x.AsSpan(start, columns);
            double sum = 0;
            foreach (float v in row) sum += (double)v * v;
            float scale = (float)(1 / Math.Sqrt(sum / columns + eps));
            for (int i = 0; i < columns; i++) row[i] = row[i] * scale * weight[i];
        }
    }

    /// <summary>An op wrote these tensors: if one is the last product's input, the next product reads it afresh.</summary>
    private void Wrote(params ReadOnlySpan<ITensor?> outputs)
    {
        foreach (var output in outputs)
        {
            if (output is not null && output == _lastInput?.X) _lastInput = null;
        }
    }

    public ITensor UploadVector(ReadOnlySpan<float> values) => inner.UploadVector(values);
    public ITensor Allocate(int length, ElementType element = ElementType.F32) => inner.Allocate(length, element);
    public void Write(ITensor destination, int offset, ReadOnlySpan<float> values) { Wrote(destination); inner.Write(destination, offset, values); }
    public void Read(ITensor tensor, Span<float> destination) => inner.Read(tensor, destination);
    public void Embedding(IWeightMatrix table, ReadOnlySpan<int> tokens, ITensor output) { Wrote(output); inner.Embedding(table, tokens, output); }
    public void RmsNorm(ITensor x, ITensor weight, ITensor y, int rows, int dim, float eps) { Wrote(y); inner.RmsNorm(x, weight, y, rows, dim, eps); }
    public void LayerNorm(ITensor x, ITensor weight, ITensor? bias, ITensor y, int rows, int dim, float eps) { Wrote(y); inner.LayerNorm(x, weight, bias, y, rows, dim, eps); }
    public void Rope(ITensor x, ITensor table, int tokens, int heads, int headDim, int pos0, RopeLayout layout) { Wrote(x); inner.Rope(x, table, tokens, heads, headDim, pos0, layout); }

    public void RopeKv(ITensor qkv, ITensor table, ITensor q, ITensor keys, ITensor values, int tokens, int heads, int kvHeads, int headDim, int pos0, int ropeShift,
        RopeLayout layout, ITensor? queryNorm, ITensor? keyNorm, float eps)
    {
        Wrote(q, keys, values);
        inner.RopeKv(qkv, table, q, keys, values, tokens, heads, kvHeads, headDim, pos0, ropeShift, layout, queryNorm, keyNorm, eps);
    }

    public void Attention(ITensor q, ITensor keys, ITensor values, ITensor output, int tokens, int pos0, int heads, int kvHeads, int headDim, float scale,
        bool causal = true, int window = 0)
    {
        Wrote(output);
        inner.Attention(q, keys, values, output, tokens, pos0, heads, kvHeads, headDim, scale, causal, window);
    }

    public void SwiGlu(ITensor gate, ITensor up, ITensor output, int count) { Wrote(output); inner.SwiGlu(gate, up, output, count); }
    public void Activate(Activation function, ITensor x, ITensor y, int count) { Wrote(y); inner.Activate(function, x, y, count); }
    public void Binary(BinaryOp op, ITensor a, ITensor b, ITensor output, int count, int bLength) { Wrote(output); inner.Binary(op, a, b, output, count, bLength); }

    public void CopyRows(ITensor source, int sourceOffset, int sourceStride, ITensor destination, int destinationOffset, int destinationStride, int width, int rows)
    {
        Wrote(destination);
        inner.CopyRows(source, sourceOffset, sourceStride, destination, destinationOffset, destinationStride, width, rows);
    }

    public void RopePositions(ITensor x, ITensor table, ITensor positions, int tokens, int heads, int headDim, int section0, int section1, RopeLayout layout)
    {
        Wrote(x);
        inner.RopePositions(x, table, positions, tokens, heads, headDim, section0, section1, layout);
    }

    public void Softmax(ITensor x, int rows, int cols) { Wrote(x); inner.Softmax(x, rows, cols); }
    public void Wkv4(ITensor decay, ITensor first, ITensor k, ITensor v, ITensor state, ITensor output, int tokens, int channels) { Wrote(state, output); inner.Wkv4(decay, first, k, v, state, output, tokens, channels); }

    public void Wkv6(ITensor r, ITensor k, ITensor v, ITensor decay, ITensor first, ITensor state, ITensor output, int tokens, int heads, int headSize)
    {
        Wrote(state, output);
        inner.Wkv6(r, k, v, decay, first, state, output, tokens, heads, headSize);
    }

    public void Wkv7(ITensor r, ITensor decay, ITensor k, ITensor v, ITensor a, ITensor b, ITensor state, ITensor output, int tokens, int heads, int headSize)
    {
        Wrote(state, output);
        inner.Wkv7(r, decay, k, v, a, b, state, output, tokens, heads, headSize);
    }

    public void CausalConv1d(RowView x, ITensor weight, ITensor? bias, ITensor state, ITensor y, int tokens, int channels, int kernel)
    {
        Wrote(state, y);
        inner.CausalConv1d(x, weight, bias, state, y, tokens, channels, kernel);
    }

    public void SelectiveScan(SsmInputs inputs, ITensor state, ITensor y, int tokens) { Wrote(state, y); inner.SelectiveScan(inputs, state, y, tokens); }
    public void SsdScan(SsmInputs inputs, ITensor state, ITensor y, int tokens, int chunkSize) { Wrote(state, y); inner.SsdScan(inputs, state, y, tokens, chunkSize); }

    public void TokenShiftMix(ITensor x, ITensor state, ITensor mixes, ITensor? tokenMixes, ReadOnlySpan<ITensor> outputs, int tokens, int dim, bool updateState)
    {
        Wrote(state);
        foreach (var output in outputs) Wrote(output);
        inner.TokenShiftMix(x, state, mixes, tokenMixes, outputs, tokens, dim, updateState);
    }

    public void MoeRoute(ITensor logits, ITensor routing, int tokens, int experts, int k, bool normalize, float scale) { Wrote(routing); inner.MoeRoute(logits, routing, tokens, experts, k, normalize, scale); }

    public void MoeCombine(ITensor expertOutputs, ITensor routing, ITensor? shared, ITensor? sharedScale, ITensor output, int tokens, int k, int dim, bool accumulate = false)
    {
        Wrote(output);
        inner.MoeCombine(expertOutputs, routing, shared, sharedScale, output, tokens, k, dim, accumulate);
    }

    public void Dispose() => inner.Dispose();
}
