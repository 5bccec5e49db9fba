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
    private readonly UnfusedProduct _unfused = new();

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
        var from = Data(source);
        var to = Data(destination);
        for (int r = 0; r < rows; r++)
            from.AsSpan(sourceOffset + r * sourceStride, width).CopyTo(to.AsSpan(destinationOffset + r * destinationStride, width));
    }

    public void Write(ITensor destination, int offset, ReadOnlySpan<float> values) => values.CopyTo(Data(destination).AsSpan(offset));

    public void Wkv4(ITensor decay, ITensor first, ITensor k, ITensor v, ITensor state, ITensor output, int tokens, int channels)
    {
        var (w, u, key, value, s, o) = (Data(decay), Data(first), Data(k), Data(v), Data(state), Data(output));
        for (int c = 0; c < channels; c++)
        {
            // num and den are kept scaled by e^-max so that no exponential overflows.
            float num = s[c], den = s[channels + c], max = s[2 * channels + c];
            for (int t = 0; t < tokens; t++)
            {
                float kt = key[t * channels + c], vt = value[t * channels + c];
                float outMax = MathF.Max(max, u[c] + kt);
                float e1 = MathF.Exp(max - outMax), e2 = MathF.Exp(u[c] + kt - outMax);
                o[t * channels + c] = (e1 * num + e2 * vt) / (e1 * den + e2);
                float stateMax = MathF.Max(max + w[c], kt);
                e1 = MathF.Exp(max + w[c] - stateMax);
                e2 = MathF.Exp(kt - stateMax);
                num = e1 * num + e2 * vt;
                den = e1 * den + e2;
                max = stateMax;
            }
            (s[c], s[channels + c], s[2 * channels + c]) = (num, den, max);
        }
    }

    public void Wkv6(ITensor r, ITensor k, ITensor v, ITensor decay, ITensor first, ITensor state, ITensor output, int tokens, int heads, int headSize)
    {
        var (rr, kk, vv, w, u, s, o) = (Data(r), Data(k), Data(v), Data(decay), Data(first), Data(state), Data(output));
        int dim = heads * headSize;
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int row = t * dim + h * headSize, block = h * headSize * headSize;
                for (int i = 0; i < headSize; i++)
                {
                    double y = 0;
                    for (int j = 0; j < headSize; j++)
                    {
                        int at = block + j * headSize + i;
                        float kv = kk[row + j] * vv[row + i];
                        y += rr[row + j] * (u[h * headSize + j] * kv + s[at]);
                        s[at] = w[row + j] * s[at] + kv;
                    }
                    o[row + i] = (float)y;
                }
            }
    }

    public void Wkv7(ITensor r, ITensor decay, ITensor k, ITensor v, ITensor a, ITensor b, ITensor state, ITensor output, int tokens, int heads, int headSize)
    {
        var (rr, w, kk, vv, aa, bb, s, o) = (Data(r), Data(decay), Data(k), Data(v), Data(a), Data(b), Data(state), Data(output));
        int dim = heads * headSize;
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int row = t * dim + h * headSize;
                for (int i = 0; i < headSize; i++)
                {
                    var si = s.AsSpan((h * headSize + i) * headSize, headSize);
                    double sa = 0;
                    for (int j = 0; j < headSize; j++) sa += si[j] * aa[row + j];
                    double y = 0;
                    for (int j = 0; j < headSize; j++)
                    {
                        si[j] = (float)(si[j] * w[row + j] + sa * bb[row + j] + vv[row + i] * kk[row + j]);
                        y += si[j] * rr[row + j];
                    }
                    o[row + i] = (float)y;
                }
            }
    }

    public void CausalConv1d(RowView x, ITensor weight, ITensor? bias, ITensor state, ITensor y, int tokens, int channels, int kernel)
    {
        var input = Data(x.Tensor);
        var w = Data(weight);
        var b = bias is null ? null : Data(bias);
        var carried = Data(state);
        var output = Data(y);
        int history = kernel - 1;
        for (int c = 0; c < channels; c++)
        {
            // Input s of this batch; negative s reaches back into the carried history.
            float In(int s) => s >= 0 ? input[x.Offset + s * x.Stride + c] : carried[c * history + history + s];
            for (int t = 0; t < tokens; t++)
            {
                double sum = b?[c] ?? 0f;
                for (int k = 0; k < kernel; k++) sum += (double)w[c * kernel + k] * In(t - history + k);
                output[t * channels + c] = (float)Activations.Apply(Activation.Silu, sum);
            }
            // Ascending j reads history slots above j (j + tokens) before they are overwritten.
            for (int j = 0; j < history; j++)
                carried[c * history + j] = In(tokens - history + j);
        }
    }

    public void SelectiveScan(SsmInputs inputs, ITensor state, ITensor y, int tokens)
    {
        inputs.Validate();
        var scan = new ScanData(inputs);
        var h = Data(state);
        var output = Data(y);
        int n = inputs.StateSize;
        Parallel.For(0, inputs.Channels, c =>
        {
            int head = c / inputs.HeadDim;
            for (int t = 0; t < tokens; t++)
            {
                double dt = scan.Step(t, head), x = scan.X(t, c), sum = 0;
                for (int i = 0; i < n; i++)
                {
                    double value = Math.Exp(dt * scan.Decay(head, i)) * h[c * n + i] + dt * scan.B(t, head, i) * x;
                    h[c * n + i] = (float)value;
                    sum += value * scan.C(t, head, i);
                }
                output[t * inputs.Channels + c] = scan.Output(t, c, head, sum);
            }
        });
    }

    public void SsdScan(SsmInputs inputs, ITensor state, ITensor y, int tokens, int chunkSize)
    {
        inputs.Validate();
        if (!inputs.ScalarDecay) throw new ArgumentException("the chunked scan needs one decay rate per head");
        if (chunkSize <= 0) throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "the chunk size must be positive");
        var scan = new ScanData(inputs);
        var h = Data(state);
        var output = Data(y);
        int n = inputs.StateSize, headDim = inputs.HeadDim;
        Parallel.For(0, inputs.Heads, head =>
        {
            var dt = new double[chunkSize];
            var logDecay = new double[chunkSize];   // Σ dt·A from the chunk's start through each token
            var scores = new double[chunkSize, chunkSize];   // (C_t·B_s)·exp(L_t - L_s)·dt_s, shared by the head's columns
            for (int start = 0; start < tokens; start += chunkSize)
            {
                int length = Math.Min(chunkSize, tokens - start);
                double total = 0;
                for (int s = 0; s < length; s++)
                {
                    dt[s] = scan.Step(start + s, head);
                    total += dt[s] * scan.Decay(head, 0);
                    logDecay[s] = total;
                }
                for (int t = 0; t < length; t++)
                {
                    for (int s = 0; s <= t; s++)
                    {
                        double cb = 0;
                        for (int i = 0; i < n; i++) cb += scan.C(start + t, head, i) * scan.B(start + s, head, i);
                        scores[t, s] = cb * Math.Exp(logDecay[t] - logDecay[s]) * dt[s];
                    }
                }
                for (int p = 0; p < headDim; p++)
                {
                    int c = head * headDim + p;
                    for (int t = 0; t < length; t++)
                    {
                        // Inside the chunk: Σ_{s≤t} scores[t, s]·x_s; before it: exp(L_t)·C_t·state.
                        double sum = 0;
                        for (int s = 0; s <= t; s++) sum += scores[t, s] * scan.X(start + s, c);
                        double carried = 0;
                        for (int i = 0; i < n; i++) carried += scan.C(start + t, head, i) * h[c * n + i];
                        output[(start + t) * inputs.Channels + c] = scan.Output(start + t, c, head, sum + Math.Exp(logDecay[t]) * carried);
                    }
                    // The state after the chunk: the old one decayed through it, plus each token's decayed contribution.
                    for (int i = 0; i < n; i++)
                    {
                        double value = Math.Exp(logDecay[length - 1]) * h[c * n + i];
                        for (int s = 0; s < length; s++)
                            value += Math.Exp(logDecay[length - 1] - logDecay[s]) * dt[s] * scan.B(start + s, head, i) * scan.X(start + s, c);
                        h[c * n + i] = (float)value;
                    }
                }
            }
        });
    }

    /// <summary>Element access to a scan's inputs and the parts both scan forms share: the step size and the gated output.</summary>
    private readonly struct ScanData(SsmInputs inputs)
    {
        private readonly float[] _x = Data(inputs.X.Tensor), _dt = Data(inputs.Dt.Tensor), _b = Data(inputs.B.Tensor),
            _c = Data(inputs.C.Tensor), _z = Data(inputs.Z.Tensor), _dtBias = Data(inputs.DtBias), _a = Data(inputs.A), _d = Data(inputs.D);
        private readonly int _headsPerGroup = inputs.Heads / inputs.Groups;

        public double X(int t, int c) => _x[inputs.X.Offset + t * inputs.X.Stride + c];

        public double Step(int t, int head) =>
            Math.Clamp(Activations.Apply(Activation.Softplus, _dt[inputs.Dt.Offset + t * inputs.Dt.Stride + head] + (double)_dtBias[head]), inputs.DtMin, inputs.DtMax);

        public double Decay(int head, int i) => inputs.ScalarDecay ? _a[head] : _a[head * inputs.StateSize + i];

        public double B(int t, int head, int i) => _b[inputs.B.Offset + t * inputs.B.Stride + head / _headsPerGroup * inputs.StateSize + i];

        public double C(int t, int head, int i) => _c[inputs.C.Offset + t * inputs.C.Stride + head / _headsPerGroup * inputs.StateSize + i];

        public float Output(int t, int c, int head, double scanned) =>
            (float)((scanned + _d[head] * X(t, c)) * Activations.Apply(Activation.Silu, _z[inputs.Z.Offset + t * inputs.Z.Stride + c]));
    }

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

    public void MoeCombine(ITensor expertOutputs, ITensor routing, ITensor? shared, ITensor? sharedScale, ITensor output, int tokens, int k, int dim, bool accumulate = false)
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
                o[t * dim + d] = accumulate ? o[t * dim + d] + (float)sum : (float)sum;
            }
        }
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

    public void TokenShiftMix(ITensor x, ITensor state, ITensor mixes, ITensor? tokenMixes, ReadOnlySpan<ITensor> outputs, int tokens, int dim, bool updateState)
    {
        if (outputs.Length is < 1 or > 6) throw new ArgumentException($"token shift takes 1 to 6 outputs, got {outputs.Length}", nameof(outputs));
        if (tokens <= 0) return;
        var input = Data(x);
        var last = Data(state);
        var mix = Data(mixes);
        var perToken = tokenMixes is null ? null : Data(tokenMixes);
        int count = outputs.Length;
        for (int i = 0; i < count; i++)
        {
            var output = Data(outputs[i]);
            for (int t = 0; t < tokens; t++)
            {
                for (int c = 0; c < dim; c++)
                {
                    float current = input[t * dim + c];
                    float previous = t == 0 ? last[c] : input[(t - 1) * dim + c];
                    float m = perToken is null ? mix[i * dim + c] : mix[i * dim + c] + perToken[(t * count + i) * dim + c];
                    // The arithmetic of Sub, Mul and Add one after another: shift = previous - current; current + shift·m.
                    float product = (previous - current) * m;
                    output[t * dim + c] = product + current;
                }
            }
        }
        if (updateState) Array.Copy(input, (tokens - 1) * dim, last, 0, dim);
    }
}
