using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Engine.Formats;

namespace Engine.Runtime.Cpu;

/// <summary>
/// The reference backend: plain C# over float32 arrays, accumulating dot products and norms in float64. It is the
/// oracle the shaders are tested against and the fallback when no Vulkan device exists.
/// </summary>
public sealed class CpuBackend : IBackend
{
    private readonly LowRankUploader _lowRank = new();

    public string Name => "cpu";

    public string DeviceName => $"CPU reference ({Environment.ProcessorCount} threads)";

    public IWeightMatrix UploadMatrix(TensorInfo info, ReadOnlySpan<byte> data, ITensorSource? shared = null)
    {
        if (info.Type == WeightType.LowRank) return _lowRank.Upload(this, info, data, shared);
        var (rows, columns) = MatrixShape.Of(info);
        MatrixShape.CheckSize(info, data);
        return new CpuWeightMatrix(info, data, shared, () => RuntimePrecision);
    }

    public int RuntimePrecision
    {
        get;
        set => field = RuntimePrecisionRule.Check(value);
    }

    public ITensor UploadVector(ReadOnlySpan<float> values) => new CpuTensor(values.ToArray());

    public ITensor Allocate(int length) => new CpuTensor(new float[length]);

    public void Embedding(IWeightMatrix table, ReadOnlySpan<int> tokens, ITensor output)
    {
        if (table is LowRankMatrix lowRank) throw lowRank.EmbeddingNotSupported();
        var matrix = (CpuWeightMatrix)table;
        var o = Data(output);
        for (int t = 0; t < tokens.Length; t++)
        {
            int token = tokens[t];
            if ((uint)token >= (uint)matrix.Rows)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary (0..{matrix.Rows - 1})");
            matrix.Row(token).CopyTo(o.AsSpan(t * matrix.Columns));
        }
    }

    public void Linear(IWeightMatrix weight, ITensor? bias, ITensor x, ITensor y, int tokens)
    {
        if (weight is LowRankMatrix lowRank)
        {
            lowRank.Linear(this, bias, x, y, tokens);
            return;
        }
        var w = (CpuWeightMatrix)weight;
        var input = Data(x);
        var output = Data(y);
        var b = bias is null ? null : Data(bias);
        int rows = w.Rows, cols = w.Columns;
        Parallel.For(0, rows, r =>
        {
            var row = w.Row(r);
            for (int t = 0; t < tokens; t++)
            {
                double sum = Dot(row, input.AsSpan(t * cols, cols));
                output[t * rows + r] = (float)(sum + (b?[r] ?? 0f));
            }
        });
    }

    public void RmsNorm(ITensor x, ITensor weight, ITensor y, int rows, int dim, float eps)
    {
        var input = Data(x);
        var w = Data(weight);
        var output = Data(y);
        for (int r = 0; r < rows; r++)
        {
            var row = input.AsSpan(r * dim, dim);
            double scale = 1.0 / Math.Sqrt(Dot(row, row) / dim + eps);
            for (int i = 0; i < dim; i++)
                output[r * dim + i] = (float)(row[i] * scale * w[(r * dim + i) % w.Length]);
        }
    }

    public void LayerNorm(ITensor x, ITensor weight, ITensor? bias, ITensor y, int rows, int dim, float eps)
    {
        var input = Data(x);
        var w = Data(weight);
        var b = bias is null ? null : Data(bias);
        var output = Data(y);
        for (int r = 0; r < rows; r++)
        {
            var row = input.AsSpan(r * dim, dim);
            double mean = 0, variance = 0;
            foreach (float value in row) mean += value;
            mean /= dim;
            foreach (float value in row) variance += (value - mean) * (value - mean);
            double scale = 1.0 / Math.Sqrt(variance / dim + eps);
            for (int i = 0; i < dim; i++)
            {
                int k = (r * dim + i) % w.Length;
                output[r * dim + i] = (float)((row[i] - mean) * scale * w[k] + (b?[k] ?? 0f));
            }
        }
    }

    public void Rope(ITensor x, ITensor table, int tokens, int heads, int headDim, int pos0, RopeLayout layout)
    {
        var data = Data(x);
        var cosSin = Data(table);
        int half = headDim / 2;
        for (int t = 0; t < tokens; t++)
        {
            for (int h = 0; h < heads; h++)
            {
                int b = (t * heads + h) * headDim;
                for (int i = 0; i < half; i++)
                {
                    int entry = ((pos0 + t) * half + i) * 2;
                    float cos = cosSin[entry], sin = cosSin[entry + 1];
                    int first = layout == RopeLayout.RotateHalf ? b + i : b + 2 * i;
                    int second = layout == RopeLayout.RotateHalf ? b + i + half : b + 2 * i + 1;
                    float xa = data[first], xb = data[second];
                    data[first] = xa * cos - xb * sin;
                    data[second] = xb * cos + xa * sin;
                }
            }
        }
    }

    public void Attention(ITensor q, ITensor keys, ITensor values, ITensor output, int tokens, int pos0, int heads, int kvHeads, int headDim, float scale, bool causal = true)
    {
        var query = Data(q);
        var k = Data(keys);
        var v = Data(values);
        var o = Data(output);
        int kvStride = kvHeads * headDim;
        int group = heads / kvHeads;
        Parallel.For(0, tokens * heads, index =>
        {
            int t = index / heads, h = index % heads;
            int length = causal ? pos0 + t + 1 : pos0 + tokens;
            int kvOffset = h / group * headDim;
            var qRow = query.AsSpan((t * heads + h) * headDim, headDim);
            var scores = new double[length];
            double max = double.NegativeInfinity;
            for (int p = 0; p < length; p++)
            {
                scores[p] = Dot(qRow, k.AsSpan(p * kvStride + kvOffset, headDim)) * scale;
                max = Math.Max(max, scores[p]);
            }
            double sum = 0;
            for (int p = 0; p < length; p++)
            {
                scores[p] = Math.Exp(scores[p] - max);
                sum += scores[p];
            }
            for (int d = 0; d < headDim; d++)
            {
                double acc = 0;
                for (int p = 0; p < length; p++) acc += scores[p] * v[p * kvStride + kvOffset + d];
                o[(t * heads + h) * headDim + d] = (float)(acc / sum);
            }
        });
    }

    public void SwiGlu(ITensor gate, ITensor up, ITensor output, int count)
    {
        var g = Data(gate);
        var u = Data(up);
        var o = Data(output);
        for (int i = 0; i < count; i++)
        {
            double x = g[i];
            o[i] = (float)(x / (1.0 + Math.Exp(-x)) * u[i]);
        }
    }

    public void Activate(Activation function, ITensor x, ITensor y, int count)
    {
        var input = Data(x);
        var output = Data(y);
        for (int i = 0; i < count; i++) output[i] = (float)Activations.Apply(function, input[i]);
    }

    public void Binary(BinaryOp op, ITensor a, ITensor b, ITensor output, int count, int bLength)
    {
        var x = Data(a);
        var y = Data(b);
        var o = Data(output);
        for (int i = 0; i < count; i++)
        {
            float left = x[i], right = y[i % bLength];
            o[i] = op switch
            {
                BinaryOp.Add => left + right,
                BinaryOp.Sub => left - right,
                BinaryOp.Mul => left * right,
                _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown operator"),
            };
        }
    }

    public void CopyRows(ITensor source, int sourceOffset, int sourceStride, ITensor destination, int destinationOffset, int destinationStride, int width, int rows)
    {
        var from = Data(source);
        var to = Data(destination);
        for (int r = 0; r < rows; r++)
            from.AsSpan(sourceOffset + r * sourceStride, width).CopyTo(to.AsSpan(destinationOffset + r * destinationStride, width));
    }

    public void Write(ITensor destination, int offset, ReadOnlySpan<float> values) => values.CopyTo(Data(destination).AsSpan(offset));

    public IWeightMatrix UploadExperts(IReadOnlyList<TensorInfo> experts, IReadOnlyList<byte[]> data, ITensorSource? shared = null)
    {
        var (info, stacked) = ExpertStack.Concatenate(experts, data);
        if (info.Layout.TailBytes == 0) return UploadMatrix(info, stacked, shared);
        // Per-matrix data (PCDVQ's rotations): the reference decodes each expert and keeps the stack in float32.
        int count = (int)experts[0].ElementCount;
        var values = new float[info.ElementCount];
        for (int e = 0; e < experts.Count; e++) experts[e].Format.Decode(experts[e], data[e], values.AsSpan(e * count, count), shared);
        return UploadMatrix(info with { Type = WeightType.F32, Parameters = default }, MemoryMarshal.AsBytes(values.AsSpan()));
    }

    public void MoeRoute(ITensor logits, ITensor routing, int tokens, int experts, int k, bool normalize, float scale)
    {
        MoeRouting.Check(tokens, experts, k, logits, routing);
        var l = Data(logits);
        var table = Data(routing);
        int slots = tokens * k;
        table[0] = slots;
        table[1] = experts;
        var taken = new bool[experts];
        for (int t = 0; t < tokens; t++)
        {
            var row = l.AsSpan(t * experts, experts);
            double top = double.NegativeInfinity, total = 0, chosen = 0;
            foreach (float v in row) top = Math.Max(top, v);
            foreach (float v in row) total += Math.Exp(v - top);
            Array.Clear(taken);
            for (int j = 0; j < k; j++)
            {
                int best = -1;
                for (int e = 0; e < experts; e++)
                    if (!taken[e] && (best < 0 || row[e] > row[best])) best = e;  // strictly greater: ties go to the lower index
                taken[best] = true;
                double weight = Math.Exp(row[best] - top) / total;
                chosen += weight;
                table[MoeRouting.Expert(t * k + j)] = best;
                table[MoeRouting.Weight(t * k + j)] = (float)weight;
            }
            double factor = (normalize ? 1 / chosen : 1) * scale;
            for (int j = 0; j < k; j++) table[MoeRouting.Weight(t * k + j)] = (float)(table[MoeRouting.Weight(t * k + j)] * factor);
        }
        int list = MoeRouting.List(slots, experts);
        for (int e = 0; e < experts; e++)
        {
            table[MoeRouting.GroupStart(slots, e)] = list - MoeRouting.List(slots, experts);
            for (int s = 0; s < slots; s++)
                if ((int)table[MoeRouting.Expert(s)] == e) table[list++] = s;
        }
        table[MoeRouting.GroupStart(slots, experts)] = slots;
    }

    public void ExpertLinear(IWeightMatrix experts, int expertCount, ITensor routing, ITensor x, ITensor y, int tokens, int k, bool inputPerSlot)
    {
        if (experts is LowRankExperts lowRank)
        {
            lowRank.ExpertLinear(this, expertCount, routing, x, y, tokens, k, inputPerSlot);
            return;
        }
        if (experts is not CpuWeightMatrix w || expertCount <= 0 || w.Rows % expertCount != 0)
            throw new ArgumentException($"expert weights must be a stack of {expertCount} equal matrices on this backend", nameof(experts));
        var table = Data(routing);
        var input = Data(x);
        var output = Data(y);
        int rows = w.Rows / expertCount, cols = w.Columns;
        Parallel.For(0, tokens * k, s =>
        {
            int expert = (int)table[MoeRouting.Expert(s)];
            var xRow = input.AsSpan((inputPerSlot ? s : s / k) * cols, cols);
            for (int r = 0; r < rows; r++) output[s * rows + r] = (float)Dot(w.Row(expert * rows + r), xRow);
        });
    }

    public void MoeCombine(ITensor expertOutputs, ITensor routing, ITensor? shared, ITensor? sharedScale, ITensor output, int tokens, int k, int dim)
    {
        var y = Data(expertOutputs);
        var table = Data(routing);
        var sharedOut = shared is null ? null : Data(shared);
        var scale = sharedScale is null ? null : Data(sharedScale);
        var o = Data(output);
        for (int t = 0; t < tokens; t++)
        {
            for (int d = 0; d < dim; d++)
            {
                double sum = 0;
                for (int j = 0; j < k; j++) sum += (double)table[MoeRouting.Weight(t * k + j)] * y[(t * k + j) * dim + d];
                if (sharedOut is not null) sum += (scale?[t] ?? 1.0) * sharedOut[t * dim + d];
                o[t * dim + d] = (float)sum;
            }
        }
    }

    public void Softmax(ITensor x, int rows, int cols)
    {
        var data = Data(x);
        for (int r = 0; r < rows; r++)
        {
            var row = data.AsSpan(r * cols, cols);
            double max = double.NegativeInfinity;
            foreach (float value in row) max = Math.Max(max, value);
            double sum = 0;
            for (int i = 0; i < cols; i++) sum += Math.Exp(row[i] - max);
            for (int i = 0; i < cols; i++) row[i] = (float)(Math.Exp(row[i] - max) / sum);
        }
    }

    public void Read(ITensor tensor, Span<float> destination) => Data(tensor).AsSpan(0, destination.Length).CopyTo(destination);

    public void Dispose()
    {
    }

    private static float[] Data(ITensor tensor) => ((CpuTensor)tensor).Data;

    /// <summary>Dot product accumulated in float64 (widened 8 floats at a time where the CPU has 256-bit vectors).</summary>
    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var low = Vector256<double>.Zero;
        var high = Vector256<double>.Zero;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= a.Length; i += 8)
            {
                var (aLow, aHigh) = Vector256.Widen(Vector256.Create(a.Slice(i, 8)));
                var (bLow, bHigh) = Vector256.Widen(Vector256.Create(b.Slice(i, 8)));
                low += aLow * bLow;
                high += aHigh * bHigh;
            }
        }
        double sum = Vector256.Sum(low + high);
        for (; i < a.Length; i++) sum += (double)a[i] * b[i];
        return sum;
    }
}
