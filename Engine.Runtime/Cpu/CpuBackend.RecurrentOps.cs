using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Engine.Formats;

namespace Engine.Runtime.Cpu;

/// <summary>The recurrent modules' ops: RWKV's WKV and token shift, Mamba's convolution and scans.</summary>
public sealed partial class CpuBackend
{
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
