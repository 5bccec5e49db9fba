#version 450
// State-space model ops (Mamba), one variant per op; the math is the C# reference's (CpuBackend, SsmInputs):
//   CONV1D:     causal depthwise conv + SiLU, one invocation per channel, carrying its last K-1 inputs in `state`.
//   SCAN:       the selective scan token after token, each channel on a segment of a workgroup's invocations that
//               share out its state columns.
//   SSD_SCORES: Mamba-2's chunked form, first pass, one workgroup per (chunk, head): the chunk's cumulative log decays
//               L, its steps dt and its attention-like scores M[t, s] = (C_t·B_s)·exp(L_t - L_s)·dt_s for s ≤ t, which
//               every column of the head shares, into `scratch` ([heads][tokens] L, [heads][tokens] dt, then
//               [heads][tokens][chunk] M, s counted from the chunk's start).
//   SSD:        second pass, one workgroup per channel, chunk after chunk: y_t = Σ_s M[t, s]·x_s plus the decayed
//               contribution exp(L_t)·C_t·state of the state carried in, then the state passed on.

#if defined(CONV1D)
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) buffer State { float state[]; };
layout(std430, binding = 4) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push
{
    uint tokens;
    uint channels;
    uint kernel;
    uint xOffset;
    uint xStride;
    uint hasBias;
} p;

// Input s of the batch; negative s reaches back into the channel's carried history.
float input_at(uint c, int s)
{
    uint history = p.kernel - 1u;
    return s >= 0 ? x[p.xOffset + uint(s) * p.xStride + c] : state[c * history + uint(int(history) + s)];
}

void main()
{
    uint c = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (c >= p.channels) return;
    int history = int(p.kernel) - 1;
    for (uint t = 0u; t < p.tokens; t++)
    {
        float sum = p.hasBias != 0u ? bias[c] : 0.0;
        for (uint k = 0u; k < p.kernel; k++) sum += w[c * p.kernel + k] * input_at(c, int(t) - history + int(k));
        y[t * p.channels + c] = sum / (1.0 + exp(-sum));
    }
    // Ascending j reads history slots above j before they are overwritten.
    for (int j = 0; j < history; j++) state[c * uint(history) + uint(j)] = input_at(c, int(p.tokens) - history + j);
}

#elif defined(SCAN) || defined(SSD_SCORES) || defined(SSD)
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 64;

layout(std430, binding = 0) readonly buffer X { float xs[]; };
layout(std430, binding = 1) readonly buffer Dt { float dts[]; };
layout(std430, binding = 2) readonly buffer B { float bs[]; };
layout(std430, binding = 3) readonly buffer C { float cs[]; };
layout(std430, binding = 4) readonly buffer Z { float zs[]; };
layout(std430, binding = 5) readonly buffer DtBias { float dtBias[]; };
layout(std430, binding = 6) readonly buffer A { float as_[]; };
layout(std430, binding = 7) readonly buffer D { float ds[]; };
layout(std430, binding = 8) buffer State { float state[]; };
layout(std430, binding = 9) writeonly buffer Y { float y[]; };
layout(std430, binding = 10) buffer Scratch { float scratch[]; };

layout(push_constant) uniform Push
{
    uint tokens;
    uint heads;
    uint headDim;
    uint stateSize;
    uint groups;
    uint xOffset;
    uint xStride;
    uint dtOffset;
    uint dtStride;
    uint bOffset;
    uint bStride;
    uint cOffset;
    uint cStride;
    uint zOffset;
    uint zStride;
    uint scalarDecay;
    float dtMin;
    float dtMax;
    uint chunk;
    uint yOffset;
} p;

float x_at(uint t, uint c) { return xs[p.xOffset + t * p.xStride + c]; }
float b_at(uint t, uint g, uint n) { return bs[p.bOffset + t * p.bStride + g * p.stateSize + n]; }
float c_at(uint t, uint g, uint n) { return cs[p.cOffset + t * p.cStride + g * p.stateSize + n]; }
float decay(uint h, uint n) { return p.scalarDecay != 0u ? as_[h] : as_[h * p.stateSize + n]; }

// dt = clamp(softplus(raw + bias), dtMin, dtMax), softplus linear above 20 as PyTorch's.
float step_size(uint t, uint h)
{
    float v = dts[p.dtOffset + t * p.dtStride + h] + dtBias[h];
    return clamp(v > 20.0 ? v : log(1.0 + exp(v)), p.dtMin, p.dtMax);
}

void write_output(uint t, uint c, uint h, float scanned)
{
    float z = zs[p.zOffset + t * p.zStride + c];
    y[p.yOffset + t * p.heads * p.headDim + c] = (scanned + ds[h] * x_at(t, c)) * (z / (1.0 + exp(-z)));
}

#if defined(SCAN)
// A workgroup holds WORKGROUP / lanes channels, each summed over its own segment of `lanes` invocations, so a small
// state (Mamba-1's 16) does not leave most of a workgroup idle. The host computes the same split.
shared float partial[WORKGROUP];

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint lanes = min(WORKGROUP, p.stateSize <= 1u ? 1u : 1u << uint(findMSB(p.stateSize - 1u) + 1));
    uint lane = tid % lanes;
    uint c = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * (WORKGROUP / lanes) + tid / lanes;
    bool live = c < p.heads * p.headDim;   // inactive invocations still take part in the barriers
    uint h = c / p.headDim, g = h / (p.heads / p.groups);
    for (uint t = 0u; t < p.tokens; t++)
    {
        float sum = 0.0;
        if (live)
        {
            float dt = step_size(t, h);
            float x = x_at(t, c);
            for (uint n = lane; n < p.stateSize; n += lanes)
            {
                float s = exp(dt * decay(h, n)) * state[c * p.stateSize + n] + dt * b_at(t, g, n) * x;
                state[c * p.stateSize + n] = s;
                sum += s * c_at(t, g, n);
            }
        }
        partial[tid] = sum;
        barrier();
        for (uint s = lanes / 2u; s > 0u; s >>= 1)
        {
            if (lane < s) partial[tid] += partial[tid + s];
            barrier();
        }
        if (live && lane == 0u) write_output(t, c, h, partial[tid]);
        barrier();
    }
}

#else
const uint MAX_STATE = 256;
const uint MAX_CHUNK = 256;
shared float logDecay[MAX_CHUNK];  // Σ dt·A from the chunk's start through each token
shared float dtx[MAX_CHUNK];       // SSD_SCORES: dt of each token; SSD: dt·x

uint decay_at(uint h, uint t) { return h * p.tokens + t; }
uint step_at(uint h, uint t) { return (p.heads + h) * p.tokens + t; }
uint score_at(uint h, uint t, uint s) { return 2u * p.heads * p.tokens + (h * p.tokens + t) * p.chunk + s; }

#if defined(SSD_SCORES)
void main()
{
    uint start = gl_WorkGroupID.x * p.chunk, h = gl_WorkGroupID.y;
    uint tid = gl_LocalInvocationID.x;
    uint g = h / (p.heads / p.groups);
    uint length = min(p.chunk, p.tokens - start);
    for (uint i = tid; i < length; i += WORKGROUP)
    {
        dtx[i] = step_size(start + i, h);
        logDecay[i] = dtx[i] * as_[h];
    }
    barrier();
    if (tid == 0u)
        for (uint i = 1u; i < length; i++) logDecay[i] += logDecay[i - 1u];
    barrier();
    for (uint i = tid; i < length; i += WORKGROUP)
    {
        scratch[decay_at(h, start + i)] = logDecay[i];
        scratch[step_at(h, start + i)] = dtx[i];
    }
    for (uint e = tid; e < length * length; e += WORKGROUP)
    {
        uint i = e / length, s = e % length;
        if (s > i) continue;
        float cb = 0.0;
        for (uint n = 0u; n < p.stateSize; n++) cb += c_at(start + i, g, n) * b_at(start + s, g, n);
        scratch[score_at(h, start + i, s)] = cb * exp(logDecay[i] - logDecay[s]) * dtx[s];
    }
}

#else
shared float carried[MAX_STATE];   // this channel's state entering the chunk
shared float chunkX[MAX_CHUNK];    // this channel's inputs in the chunk

void main()
{
    uint c = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (c >= p.heads * p.headDim) return;
    uint tid = gl_LocalInvocationID.x;
    uint h = c / p.headDim, g = h / (p.heads / p.groups);
    for (uint n = tid; n < p.stateSize; n += WORKGROUP) carried[n] = state[c * p.stateSize + n];
    for (uint start = 0u; start < p.tokens; start += p.chunk)
    {
        uint length = min(p.chunk, p.tokens - start);
        for (uint i = tid; i < length; i += WORKGROUP)
        {
            logDecay[i] = scratch[decay_at(h, start + i)];
            chunkX[i] = x_at(start + i, c);
            dtx[i] = scratch[step_at(h, start + i)] * chunkX[i];
        }
        barrier();
        for (uint i = tid; i < length; i += WORKGROUP)
        {
            uint t = start + i;
            float sum = 0.0;
            for (uint s = 0u; s <= i; s++) sum += scratch[score_at(h, t, s)] * chunkX[s];
            float before = 0.0;
            for (uint n = 0u; n < p.stateSize; n++) before += c_at(t, g, n) * carried[n];
            write_output(t, c, h, sum + exp(logDecay[i]) * before);
        }
        barrier();
        float last = logDecay[length - 1u];
        for (uint n = tid; n < p.stateSize; n += WORKGROUP)
        {
            float value = exp(last) * carried[n];
            for (uint s = 0u; s < length; s++) value += exp(last - logDecay[s]) * dtx[s] * b_at(start + s, g, n);
            carried[n] = value;
        }
        barrier();
    }
    for (uint n = tid; n < p.stateSize; n += WORKGROUP) state[c * p.stateSize + n] = carried[n];
}
#endif
#endif

#else
#error "define CONV1D, SCAN, SSD_SCORES or SSD"
#endif
