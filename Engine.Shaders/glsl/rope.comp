#version 450
// Rotary position embedding, in place, on x[tokens][heads][headDim]; token t sits at position pos0 + t.
// Angles come from a table cos/sin[position][headDim/2] computed once on the host in float64, because
// GPU sin/cos lose accuracy on large arguments. ROTATE_HALF pairs (i, i + headDim/2) as Hugging Face does;
// otherwise (2i, 2i + 1) as llama2.c and Meta's original code do.
// POSITIONS: each token has three positions (positions[t][3], exact integers stored as floats) and rotary pair i
// takes the first while i < section0, the second while i < section0 + section1, then the third: multimodal RoPE
// (Qwen2-VL's temporal/height/width) and 2-D vision RoPE (section0 = 0).
// STORE_KV: the attention prologue of a decode graph (below).

#ifdef STORE_KV
// The attention prologue of a decode graph in one dispatch, over a batch of fused projections
// qkv[tokens][heads*d | kvHeads*d | kvHeads*d] (token t at cache row pos0 + t, rotated as position pos0 + ropeShift + t):
//   q heads: optional per-head RMSNorm (Qwen3's q_norm), RoPE, written to q[tokens][heads*d];
//   k heads: optional per-head RMSNorm (k_norm), RoPE, stored in the key cache at row pos0 + t;
//   v heads: stored in the value cache as they are.
// One workgroup per (head slot, token), slots 0..heads-1 for q, then kvHeads for k, then kvHeads for v. Rotation
// as above: angles from the host table, ROTATE_HALF pairs (i, i + d/2), else (2i, 2i + 1). Each invocation writes
// elements 2i and 2i + 1 of a head (with KV_F16 one word of a cache of halves, half.glsl), each computed on its own.

layout(local_size_x = 64) in;
const uint WORKGROUP = 64;

layout(std430, binding = 0) readonly buffer Qkv { float qkv[]; };
layout(std430, binding = 1) readonly buffer Table { vec2 cosSin[]; };
layout(std430, binding = 2) writeonly buffer Queries { float q[]; };
#ifdef KV_F16
#include "half.glsl"
layout(std430, binding = 3) writeonly buffer Keys { uint keys[]; };
layout(std430, binding = 4) writeonly buffer Values { uint values[]; };
#define STORE_PAIR(cache, index, even, odd) cache[(index) / 2u] = packHalves(even, odd)
#else
layout(std430, binding = 3) writeonly buffer Keys { float keys[]; };
layout(std430, binding = 4) writeonly buffer Values { float values[]; };
#define STORE_PAIR(cache, index, even, odd) { cache[index] = even; cache[(index) + 1u] = odd; }
#endif
layout(std430, binding = 5) readonly buffer QueryNorm { float qNorm[]; };
layout(std430, binding = 6) readonly buffer KeyNorm { float kNorm[]; };

layout(push_constant) uniform Push
{
    uint tokens;
    uint heads;
    uint kvHeads;
    uint headDim;
    uint pos0;
    int ropeShift;    // rotation position minus cache row (negative after an image under multimodal RoPE)
    uint rotateHalf;
    uint hasQueryNorm;
    uint hasKeyNorm;
    float eps;
} p;

shared float partial[WORKGROUP];

// The head (first element `source` in qkv) being rotated, and its norm: scale and weights, or none.
uint source;
bool normed;
bool isQuery;
float scale;

float element(uint e)
{
    float x = qkv[source + e];
    return normed ? x * scale * (isQuery ? qNorm[e] : kNorm[e]) : x;
}

// Element e of the head rotated to `position`: pair (a, b) becomes (a cos - b sin, b cos + a sin).
float rotated(uint e, uint position)
{
    uint half_dim = p.headDim / 2u;
    bool first = p.rotateHalf != 0u ? e < half_dim : (e & 1u) == 0u;
    uint i = p.rotateHalf != 0u ? e % half_dim : e / 2u;
    uint partner = p.rotateHalf != 0u ? (first ? e + half_dim : e - half_dim) : e ^ 1u;
    vec2 cs = cosSin[position * half_dim + i];
    float x = element(e), y = element(partner);
    return first ? x * cs.x - y * cs.y : x * cs.x + y * cs.y;
}

void main()
{
    uint slot = gl_WorkGroupID.x;
    uint t = gl_WorkGroupID.y;
    uint tid = gl_LocalInvocationID.x;
    uint d = p.headDim;
    uint kvDim = p.kvHeads * d;
    uint row = (p.pos0 + t) * kvDim;   // the token's row in the cache
    source = t * (p.heads * d + 2 * kvDim) + slot * d;
    if (slot >= p.heads + p.kvHeads)
    {
        uint target = row + (slot - p.heads - p.kvHeads) * d;
        for (uint e = 2u * tid; e < d; e += 2u * WORKGROUP) STORE_PAIR(values, target + e, qkv[source + e], qkv[source + e + 1u]);
        return;
    }
    isQuery = slot < p.heads;
    uint head = isQuery ? slot : slot - p.heads;
    normed = isQuery ? p.hasQueryNorm != 0 : p.hasKeyNorm != 0;
    scale = 1.0;
    if (normed)
    {
        float sum = 0.0;
        for (uint i = tid; i < d; i += WORKGROUP) sum += qkv[source + i] * qkv[source + i];
        partial[tid] = sum;
        barrier();
        for (uint s = WORKGROUP / 2; s > 0; s >>= 1)
        {
            if (tid < s) partial[tid] += partial[tid + s];
            barrier();
        }
        scale = 1.0 / sqrt(partial[0] / float(d) + p.eps);
    }
    uint position = uint(int(p.pos0 + t) + p.ropeShift);
    uint target = isQuery ? (t * p.heads + head) * d : row + head * d;
    for (uint e = 2u * tid; e < d; e += 2u * WORKGROUP)
    {
        float even = rotated(e, position), odd = rotated(e + 1u, position);
        if (isQuery) { q[target + e] = even; q[target + e + 1u] = odd; }
        else STORE_PAIR(keys, target + e, even, odd);
    }
}

#else

layout(local_size_x = 64) in;

layout(std430, binding = 0) buffer Data { float x[]; };
layout(std430, binding = 1) readonly buffer Table { vec2 cosSin[]; };
#ifdef POSITIONS
layout(std430, binding = 2) readonly buffer Positions { float positions[]; };
#endif

layout(push_constant) uniform Push
{
    uint tokens;
    uint heads;
    uint headDim;
    uint pos0;
    uint rotateHalf;
#ifdef POSITIONS
    uint section0;
    uint section1;
#endif
} p;

void main()
{
    uint half_dim = p.headDim / 2;
    uint index = gl_GlobalInvocationID.x;
    if (index >= p.tokens * p.heads * half_dim) return;
    uint i = index % half_dim;
    uint head = (index / half_dim) % p.heads;
    uint t = index / (half_dim * p.heads);
#ifdef POSITIONS
    uint component = i < p.section0 ? 0 : i < p.section0 + p.section1 ? 1 : 2;
    uint position = uint(positions[t * 3 + component]);
#else
    uint position = p.pos0 + t;
#endif
    vec2 cs = cosSin[position * half_dim + i];
    uint base = (t * p.heads + head) * p.headDim;
    uint a = p.rotateHalf != 0 ? base + i : base + 2 * i;
    uint b = p.rotateHalf != 0 ? base + i + half_dim : base + 2 * i + 1;
    float xa = x[a];
    float xb = x[b];
    x[a] = xa * cs.x - xb * cs.y;
    x[b] = xb * cs.x + xa * cs.y;
}
#endif
