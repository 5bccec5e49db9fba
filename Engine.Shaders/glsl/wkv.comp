#version 450
// RWKV time mixing (the WKV recurrence) over a batch of tokens with the state carried in and out: one thread per
// channel (WKV4) or per (head, value index) (WKV6, WKV7), walking the tokens in order inside the dispatch. A thread
// keeps its slice of the state (one channel's three numbers, or one column/row of its head's matrix) in registers.
// Variants: WKV4 (Hugging Face's stable form), WKV6 (x060), WKV7 (x070); see IBackend.Wkv4/6/7 for the math.

layout(local_size_x = 64) in;

layout(push_constant) uniform Push
{
    uint tokens;
    uint heads;      // channels for WKV4
    uint headSize;   // 1 for WKV4
} p;

#if defined(WKV4)
layout(std430, binding = 0) readonly buffer Decay { float w[]; };
layout(std430, binding = 1) readonly buffer First { float u[]; };
layout(std430, binding = 2) readonly buffer Key { float k[]; };
layout(std430, binding = 3) readonly buffer Value { float v[]; };
layout(std430, binding = 4) buffer State { float s[]; };
layout(std430, binding = 5) writeonly buffer Output { float o[]; };

void main()
{
    uint c = gl_GlobalInvocationID.x;
    uint channels = p.heads;
    if (c >= channels) return;
    float num = s[c], den = s[channels + c], maxExp = s[2 * channels + c];
    for (uint t = 0; t < p.tokens; t++)
    {
        float kt = k[t * channels + c], vt = v[t * channels + c];
        float outMax = max(maxExp, u[c] + kt);
        float e1 = exp(maxExp - outMax), e2 = exp(u[c] + kt - outMax);
        o[t * channels + c] = (e1 * num + e2 * vt) / (e1 * den + e2);
        float stateMax = max(maxExp + w[c], kt);
        e1 = exp(maxExp + w[c] - stateMax);
        e2 = exp(kt - stateMax);
        num = e1 * num + e2 * vt;
        den = e1 * den + e2;
        maxExp = stateMax;
    }
    s[c] = num;
    s[channels + c] = den;
    s[2 * channels + c] = maxExp;
}

#else
const uint MAX_HEAD_SIZE = 128;

#if defined(WKV6)
layout(std430, binding = 0) readonly buffer R { float r[]; };
layout(std430, binding = 1) readonly buffer Key { float k[]; };
layout(std430, binding = 2) readonly buffer Value { float v[]; };
layout(std430, binding = 3) readonly buffer Decay { float w[]; };
layout(std430, binding = 4) readonly buffer First { float u[]; };
layout(std430, binding = 5) buffer State { float s[]; };
layout(std430, binding = 6) writeonly buffer Output { float o[]; };
#else
layout(std430, binding = 0) readonly buffer R { float r[]; };
layout(std430, binding = 1) readonly buffer Decay { float w[]; };
layout(std430, binding = 2) readonly buffer Key { float k[]; };
layout(std430, binding = 3) readonly buffer Value { float v[]; };
layout(std430, binding = 4) readonly buffer A { float a[]; };
layout(std430, binding = 5) readonly buffer B { float b[]; };
layout(std430, binding = 6) buffer State { float s[]; };
layout(std430, binding = 7) writeonly buffer Output { float o[]; };
#endif

void main()
{
    uint n = p.headSize, dim = p.heads * n;
    uint index = gl_GlobalInvocationID.x;
    if (index >= dim) return;
    uint h = index / n, i = index % n;
    float state[MAX_HEAD_SIZE];
#if defined(WKV6)
    // State column i of the head: S[j][i].
    for (uint j = 0; j < n; j++) state[j] = s[(h * n + j) * n + i];
    for (uint t = 0; t < p.tokens; t++)
    {
        uint row = t * dim + h * n;
        float vi = v[row + i], y = 0.0;
        for (uint j = 0; j < n; j++)
        {
            float kv = k[row + j] * vi;
            y += r[row + j] * (u[h * n + j] * kv + state[j]);
            state[j] = w[row + j] * state[j] + kv;
        }
        o[row + i] = y;
    }
    for (uint j = 0; j < n; j++) s[(h * n + j) * n + i] = state[j];
#else
    // State row i of the head: S[i][j].
    for (uint j = 0; j < n; j++) state[j] = s[index * n + j];
    for (uint t = 0; t < p.tokens; t++)
    {
        uint row = t * dim + h * n;
        float sa = 0.0;
        for (uint j = 0; j < n; j++) sa += state[j] * a[row + j];
        float vi = v[row + i], y = 0.0;
        for (uint j = 0; j < n; j++)
        {
            state[j] = state[j] * w[row + j] + sa * b[row + j] + vi * k[row + j];
            y += state[j] * r[row + j];
        }
        o[row + i] = y;
    }
    for (uint j = 0; j < n; j++) s[index * n + j] = state[j];
#endif
}
#endif
