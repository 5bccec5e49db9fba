using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Engine.Formats;

namespace Engine.Runtime.Cpu;

/// <summary>The core ops of a decoder: products, norms, rotary embedding, attention, element-wise ops.</summary>
public sealed partial class CpuBackend
{
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

    public void Linear(IWeightMatrix weight, ITensor? bias, ITensor x, ITensor y, int tokens, ProductFusion fusion = default)
    {
        if (weight is LowRankMatrix lowRank)
        {
            _unfused.Run(this, weight.Rows, weight.Columns, x, y, tokens, fusion, (input, output) => lowRank.Linear(this, bias, input, output, tokens));
            return;
        }
        var w = (CpuWeightMatrix)weight;
        int rows = w.Rows, cols = w.Columns;
        var input = Data(x);
        if (fusion.Norm is { } norm)
        {
            // The same arithmetic as RmsNorm followed by the product.
            input = new float[tokens * cols];
            RmsNorm(x, norm, new CpuTensor(input), tokens, cols, fusion.NormEps);
        }
        var output = Data(y);
        var b = bias is null ? null : Data(bias);
        var result = fusion.IsNone ? output : new float[tokens * rows];
        Parallel.For(0, rows, r =>
        {
            var row = w.Row(r);
            for (int t = 0; t < tokens; t++)
            {
                double sum = Dot(row, input.AsSpan(t * cols, cols));
                result[t * rows + r] = (float)(sum + (b?[r] ?? 0f));
            }
        });
        if (fusion.IsNone) return;
        int outputs = fusion.Outputs(rows);
        for (int t = 0; t < tokens; t++)
        {
            for (int j = 0; j < outputs; j++)
            {
                double value = result[t * rows + j];
                if (fusion.SwiGlu)
                {
                    double gate = result[t * rows + 2 * j];
                    value = (float)(gate / (1.0 + Math.Exp(-gate)) * result[t * rows + 2 * j + 1]);
                }
                int o = t * outputs + j;
                output[o] = fusion.Accumulate ? output[o] + (float)value : (float)value;
            }
        }
    }

    public void RopeKv(ITensor qkv, ITensor table, ITensor q, ITensor keys, ITensor values, int tokens, int heads, int kvHeads, int headDim, int pos0, int ropeShift,
        RopeLayout layout, ITensor? queryNorm, ITensor? keyNorm, float eps)
    {
        ElementChecks.Cache(keys, values);
        int qDim = heads * headDim, kvDim = kvHeads * headDim, width = qDim + 2 * kvDim;
        var k = new CpuTensor(new float[tokens * kvDim]);
        CopyRows(qkv, 0, width, q, 0, qDim, qDim, tokens);
        CopyRows(qkv, qDim, width, k, 0, kvDim, kvDim, tokens);
        CopyRows(qkv, qDim + kvDim, width, values, pos0 * kvDim, kvDim, kvDim, tokens);
        if (queryNorm is not null) RmsNorm(q, queryNorm, q, tokens * heads, headDim, eps);
        if (keyNorm is not null) RmsNorm(k, keyNorm, k, tokens * kvHeads, headDim, eps);
        Rope(q, table, tokens, heads, headDim, pos0 + ropeShift, layout);
        Rope(k, table, tokens, kvHeads, headDim, pos0 + ropeShift, layout);
        CopyRows(k, 0, kvDim, keys, pos0 * kvDim, kvDim, kvDim, tokens);
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

    public void Rope(ITensor x, ITensor table, int tokens, int heads, int headDim, int pos0, RopeLayout layout) =>
        Rotate(x, table, tokens, heads, headDim, layout, (t, _) => pos0 + t);

    /// <summary>Rotates each head's pairs by the table's angles at the position <paramref name="position"/>(token, pair) gives.</summary>
    private void Rotate(ITensor x, ITensor table, int tokens, int heads, int headDim, RopeLayout layout, Func<int, int, int> position)
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
                    int entry = (position(t, i) * half + i) * 2;
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

    public void Attention(ITensor q, ITensor keys, ITensor values, ITensor output, int tokens, int pos0, int heads, int kvHeads, int headDim, float scale,
        bool causal = true, int window = 0)
    {
        AttentionChecks.Validate(tokens, pos0, heads, kvHeads, headDim, causal, window);
        ElementChecks.Cache(keys, values);
        var query = Data(q);
        var k = Tensor(keys).Data;   // an f16 cache's halves are floats here
        var v = Tensor(values).Data;
        var o = Data(output);
        int kvStride = kvHeads * headDim;
        int group = heads / kvHeads;
        Parallel.For(0, tokens * heads, index =>
        {
            int t = index / heads, h = index % heads;
            int length = causal ? pos0 + t + 1 : pos0 + tokens;
            int first = window > 0 ? Math.Max(0, length - window) : 0;   // the last `window` positions, its own included
            int kvOffset = h / group * headDim;
            var qRow = query.AsSpan((t * heads + h) * headDim, headDim);
            var scores = new double[length - first];
            double max = double.NegativeInfinity;
            for (int p = first; p < length; p++)
            {
                scores[p - first] = Dot(qRow, k.AsSpan(p * kvStride + kvOffset, headDim)) * scale;
                max = Math.Max(max, scores[p - first]);
            }
            double sum = 0;
            for (int i = 0; i < scores.Length; i++)
            {
                scores[i] = Math.Exp(scores[i] - max);
                sum += scores[i];
            }
            for (int d = 0; d < headDim; d++)
            {
                double acc = 0;
                for (int p = first; p < length; p++) acc += scores[p - first] * v[p * kvStride + kvOffset + d];
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
        ElementChecks.CopyRows(source, destination, destinationOffset, destinationStride, width);
        var from = Data(source);
        var to = Tensor(destination);
        for (int r = 0; r < rows; r++)
            to.Store(destinationOffset + r * destinationStride, from.AsSpan(sourceOffset + r * sourceStride, width));
    }

    public void RopePositions(ITensor x, ITensor table, ITensor positions, int tokens, int heads, int headDim, int section0, int section1, RopeLayout layout)
    {
        var p = Data(positions);
        Rotate(x, table, tokens, heads, headDim, layout,
            (t, i) => (int)p[t * 3 + (i < section0 ? 0 : i < section0 + section1 ? 1 : 2)]);
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
}
