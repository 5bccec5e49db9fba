#version 450
// Attention of q[tokens][heads][headDim] (token t at position pos0 + t) against a KV cache
// [position][kvHeads][headDim] already holding positions 0 .. pos0 + tokens - 1.
//
// Which keys a query sees: causal, the positions up to its own, and with a sliding window W the last W of those
// (positions p - W + 1 .. p, as transformers' sliding_window); not causal (vision encoders), every stored position.
//
// Work is cut along "rows": for one kv head, row r = t * G + g is query token t of the group's head g (G query heads
// share a kv head), so a block of consecutive rows reads one kv head's keys and values once for the whole GQA group
// and for several tokens. A dispatch is (row blocks, kvHeads, splits): with splits > 1 each workgroup covers one
// slice of the key range (split-k, for decode over a long context) and writes its unnormalised partial result with
// its running maximum and sum to the partials buffer, which REDUCE then combines; with one split it writes the output.
// Partials: per (split, kv head, row), headDim + 4 floats: the output, then the maximum, the sum and two unused.
//
// Three kernels, chosen by define (head dims up to MAX_D; a smaller head dim works, the rest is masked):
// ROWS    CPU devices (lavapipe) with 8-lane subgroups, head dims a multiple of 4: a workgroup of one subgroup carries
//         ROWS_BLOCK rows; lane l owns the vec4s l, l + 8, ... of the head dimension for every row, so one vec4 load
//         per lane reads a whole key (or value) for all the rows, each row's score is one subgroupAdd, and the online
//         softmax runs on those uniform scores; the output needs no combining (the lanes own disjoint dimensions).
//         Why: on lavapipe every buffer or shared-memory access, and every cross-lane operation, is a loop over the
//         lanes, while arithmetic on private values is one vector instruction; so the kernel keeps queries and outputs
//         in private arrays indexed only by constants (preprocessor-unrolled loops: a runtime index would put them in
//         per-lane scratch memory) and spends its accesses on vec4 key and value loads shared by the rows. The
//         private arrays (2 x ROWS_BLOCK x MAX_D / 8 floats per lane) also bound the pipeline's compile time.
// FLASH   GPUs: a block of rows per workgroup; each key tile is staged in shared memory with coalesced loads and
//         serves every row of the block; a row belongs to one group of ROW_LANES invocations (a subgroup when the
//         device's subgroup size is ROW_LANES), whose lanes score one key each and own head-dim slices of the output,
//         with an online softmax reduced by subgroupMax/subgroupAdd (SUBGROUP) or through shared memory.
// REDUCE  combines the splits' partials: one invocation per output element.
// KV_F16: the cache holds halves, two per uint (half.glsl), read through uint loads widened to float (the ROWS kernel
// reads a uvec2 for four), so no 16-bit storage feature is needed; the arithmetic stays float32.

#if defined(SUBGROUP) || !(defined(FLASH) || defined(REDUCE))
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#endif

#ifndef MAX_D
#define MAX_D 256
#endif

#ifdef KV_F16
#include "half.glsl"
#endif

// CACHE(cache, i): element i of the keys or values (FLASH), or their vec4 i (ROWS), as floats.
#if defined(FLASH) || defined(REDUCE)
layout(std430, binding = 0) readonly buffer Queries { float q[]; };
#ifdef KV_F16
layout(std430, binding = 1) readonly buffer Keys { uint kCache[]; };
layout(std430, binding = 2) readonly buffer Values { uint vCache[]; };
#define CACHE(cache, i) halfAt(cache[(i) / 2u], i)
#else
layout(std430, binding = 1) readonly buffer Keys { float kCache[]; };
layout(std430, binding = 2) readonly buffer Values { float vCache[]; };
#define CACHE(cache, i) cache[i]
#endif
layout(std430, binding = 3) buffer Output { float o[]; };
layout(std430, binding = 4) buffer Partials { float partial[]; };
#else
layout(std430, binding = 0) readonly buffer Queries { vec4 q[]; };
#ifdef KV_F16
layout(std430, binding = 1) readonly buffer Keys { uvec2 kCache[]; };
layout(std430, binding = 2) readonly buffer Values { uvec2 vCache[]; };
#define CACHE(cache, i) halves4(cache[i])
#else
layout(std430, binding = 1) readonly buffer Keys { vec4 kCache[]; };
layout(std430, binding = 2) readonly buffer Values { vec4 vCache[]; };
#define CACHE(cache, i) cache[i]
#endif
layout(std430, binding = 3) buffer Output { vec4 o[]; };
layout(std430, binding = 4) buffer Partials { vec4 partial[]; };
#endif

layout(push_constant) uniform Push
{
    uint tokens;
    uint pos0;
    uint heads;
    uint kvHeads;
    uint headDim;
    float scale;
    uint causal;
    uint window;       // 0: unlimited
    uint keyBase;      // split s covers keys keyBase + s * splitLength .. + splitLength - 1
    uint splitLength;
    uint splits;
    uint rowsPerBlock; // FLASH: rows per workgroup (at most its capacity)
} p;

#define NEG_INF (-1.0 / 0.0)

// Keys visible to query token t: [firstKey(t), endKey(t)).
uint endKey(uint t) { return p.causal != 0u ? p.pos0 + t + 1u : p.pos0 + p.tokens; }
uint firstKey(uint t)
{
    uint end = p.pos0 + t + 1u;
    return p.window != 0u && end > p.window ? end - p.window : 0u;
}

// In floats: where a row's partial result starts.
uint partialBase(uint split, uint kvHead, uint row, uint rows) { return ((split * p.kvHeads + kvHead) * rows + row) * (p.headDim + 4u); }

#if !(defined(FLASH) || defined(REDUCE))   // ROWS; also the plain variant

#define ROWS_BLOCK 8u              // query rows per workgroup
#define LANES 8u                   // the subgroup size this kernel is written for: a workgroup is one subgroup
const uint SLICES = MAX_D / 32u;  // vec4s of the head each lane owns: g = lane + k * LANES

// Unrolled by the preprocessor (FOR_ROWS: i < ROWS_BLOCK, FOR_SLICES: k < SLICES), so every private-array index is a
// constant whatever the driver's loop unrolling does.
#define FOR_ROWS(M, a) M(0u, a) M(1u, a) M(2u, a) M(3u, a) M(4u, a) M(5u, a) M(6u, a) M(7u, a)
#if MAX_D == 32
#define FOR_SLICES(M, a) M(0u, a)
#elif MAX_D == 64
#define FOR_SLICES(M, a) M(0u, a) M(1u, a)
#elif MAX_D == 96
#define FOR_SLICES(M, a) M(0u, a) M(1u, a) M(2u, a)
#elif MAX_D == 128
#define FOR_SLICES(M, a) M(0u, a) M(1u, a) M(2u, a) M(3u, a)
#elif MAX_D == 256
#define FOR_SLICES(M, a) M(0u, a) M(1u, a) M(2u, a) M(3u, a) M(4u, a) M(5u, a) M(6u, a) M(7u, a)
#endif

layout(local_size_x = 8) in;

#define INIT_SLICE(k, i) \
    { \
        uint g = lane + k * LANES; \
        query[i * SLICES + k] = g < h4 ? q[q4 + min(g, last4)] * p.scale : vec4(0.0); \
        acc[i * SLICES + k] = vec4(0.0); \
    }
#define INIT_ROW(i, unused) \
    { \
        uint row = r0 + min(i, blockRows - 1u); \
        uint t = row / group; \
        uint q4 = (t * p.heads + kvHead * group + row % group) * h4; \
        myLo[i] = firstKey(t); \
        myHi[i] = endKey(t); \
        m[i] = NEG_INF; \
        l[i] = 0.0; \
        FOR_SLICES(INIT_SLICE, i) \
    }
#define LOAD_KEY(k, unused) key[k] = CACHE(kCache, k4 + min(lane + k * LANES, last4));
#define DOT_SLICE(k, i) part += dot(query[i * SLICES + k], key[k]);
// The row's score (a sum over the lanes' slices), then the online softmax with one exp per key: a new maximum
// rescales what came before by e, else the key weighs e (m = -inf: e = 0, the first key rescales nothing).
#define SCORE_ROW(i, unused) \
    { \
        float part = 0.0; \
        FOR_SLICES(DOT_SLICE, i) \
        float s = subgroupAdd(part); \
        bool visible = j >= myLo[i] && j < myHi[i]; \
        bool raised = visible && s > m[i]; \
        float e = exp(-abs(s - m[i])); \
        correction[i] = raised ? e : 1.0; \
        w[i] = visible ? (raised ? 1.0 : e) : 0.0; \
        m[i] = raised ? s : m[i]; \
        l[i] = l[i] * correction[i] + w[i]; \
    }
#define ACCUMULATE_ROW(i, k) acc[i * SLICES + k] = acc[i * SLICES + k] * correction[i] + w[i] * v;
#define ACCUMULATE_SLICE(k, unused) { vec4 v = CACHE(vCache, k4 + min(lane + k * LANES, last4)); FOR_ROWS(ACCUMULATE_ROW, k) }
#define WRITE_SLICE(k, i) \
    { \
        uint g = lane + k * LANES; \
        if (g < h4) \
        { \
            if (p.splits == 1u) o[oBase + g] = acc[i * SLICES + k] / l[i]; \
            else partial[pBase + g] = acc[i * SLICES + k]; \
        } \
    }
#define WRITE_ROW(i, unused) \
    if (i < blockRows) \
    { \
        uint row = r0 + i; \
        uint oBase = ((row / group) * p.heads + kvHead * group + row % group) * h4; \
        uint pBase = partialBase(split, kvHead, row, rows) / 4u; \
        FOR_SLICES(WRITE_SLICE, i) \
        if (p.splits != 1u && lane == 0u) partial[pBase + h4] = vec4(m[i], l[i], 0.0, 0.0); \
    }

void main()
{
    uint lane = gl_SubgroupInvocationID;
    uint group = p.heads / p.kvHeads;
    uint rows = p.tokens * group;
    uint kvHead = gl_WorkGroupID.y;
    uint split = gl_WorkGroupID.z;
    uint h4 = p.headDim / 4u;   // vec4s per head
    uint last4 = h4 - 1u;
    uint kvStride4 = p.kvHeads * h4;
    uint kvOffset4 = kvHead * h4;

    for (uint r0 = gl_WorkGroupID.x * ROWS_BLOCK; r0 < rows; r0 += gl_NumWorkGroups.x * ROWS_BLOCK)
    {
        uint blockRows = min(ROWS_BLOCK, rows - r0);
        // The block's key range, cut to this split.
        uint lo = max(firstKey(r0 / group), p.keyBase + split * p.splitLength);
        uint hi = min(endKey((r0 + blockRows - 1u) / group), p.keyBase + (split + 1u) * p.splitLength);

        vec4 query[ROWS_BLOCK * SLICES];
        vec4 acc[ROWS_BLOCK * SLICES];
        float m[ROWS_BLOCK], l[ROWS_BLOCK];
        uint myLo[ROWS_BLOCK], myHi[ROWS_BLOCK];
        FOR_ROWS(INIT_ROW, 0)

        for (uint j = lo; j < hi; j++)
        {
            uint k4 = j * kvStride4 + kvOffset4;
            vec4 key[SLICES];
            float correction[ROWS_BLOCK], w[ROWS_BLOCK];
            FOR_SLICES(LOAD_KEY, 0)
            FOR_ROWS(SCORE_ROW, 0)
            FOR_SLICES(ACCUMULATE_SLICE, 0)
        }

        FOR_ROWS(WRITE_ROW, 0)
    }
}

#elif defined(FLASH)

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 128;
layout(constant_id = 1) const uint ROW_LANES = 32;    // invocations per row: the subgroup size when SUBGROUP reductions apply
layout(constant_id = 2) const uint TILE = 32;         // keys per tile, a multiple of ROW_LANES
layout(constant_id = 3) const uint ROWS_PER_LANES = 4; // rows each group of ROW_LANES invocations carries

const uint LANE_GROUPS = WORKGROUP / ROW_LANES;
const uint BLOCK_ROWS = LANE_GROUPS * ROWS_PER_LANES;
const uint KEYS_PER_LANE = TILE / ROW_LANES;
const uint DIMS_PER_LANE = (MAX_D + ROW_LANES - 1u) / ROW_LANES;
const uint KEY_STRIDE = MAX_D + 1u;   // padding: lanes reading different keys at one dimension hit different banks

shared float queries[BLOCK_ROWS * MAX_D];
shared float keys[TILE * KEY_STRIDE];
shared float weights[BLOCK_ROWS * TILE];
shared float reduction[WORKGROUP];

uint tid;
uint lane;
bool subgroupRows;   // the lane groups are the device's subgroups

float rowMax(float x)
{
#ifdef SUBGROUP
    if (subgroupRows) return subgroupMax(x);
#endif
    reduction[tid] = x;
    barrier();
    for (uint s = ROW_LANES / 2u; s > 0u; s >>= 1)
    {
        if (lane < s) reduction[tid] = max(reduction[tid], reduction[tid + s]);
        barrier();
    }
    float result = reduction[tid - lane];
    barrier();
    return result;
}

float rowSum(float x)
{
#ifdef SUBGROUP
    if (subgroupRows) return subgroupAdd(x);
#endif
    reduction[tid] = x;
    barrier();
    for (uint s = ROW_LANES / 2u; s > 0u; s >>= 1)
    {
        if (lane < s) reduction[tid] += reduction[tid + s];
        barrier();
    }
    float result = reduction[tid - lane];
    barrier();
    return result;
}

void main()
{
    tid = gl_LocalInvocationID.x;
    lane = tid % ROW_LANES;
    uint laneGroup = tid / ROW_LANES;
#ifdef SUBGROUP
    subgroupRows = gl_SubgroupSize == ROW_LANES;
#else
    subgroupRows = false;
#endif
    uint group = p.heads / p.kvHeads;
    uint rows = p.tokens * group;
    uint kvHead = gl_WorkGroupID.y;
    uint split = gl_WorkGroupID.z;
    uint kvStride = p.kvHeads * p.headDim;
    uint kvOffset = kvHead * p.headDim;
    uint blockCapacity = p.rowsPerBlock;

    for (uint r0 = gl_WorkGroupID.x * blockCapacity; r0 < rows; r0 += gl_NumWorkGroups.x * blockCapacity)
    {
        uint blockRows = min(blockCapacity, rows - r0);
        uint lo = max(firstKey(r0 / group), p.keyBase + split * p.splitLength);
        uint hi = min(endKey((r0 + blockRows - 1u) / group), p.keyBase + (split + 1u) * p.splitLength);
        // Rows are dealt to lane groups in turn; every group runs the same number of row slots (barriers stay uniform).
        uint slots = (blockRows + LANE_GROUPS - 1u) / LANE_GROUPS;

        barrier();
        for (uint i = tid; i < blockRows * p.headDim; i += WORKGROUP)
        {
            uint r = r0 + i / p.headDim, d = i % p.headDim;
            uint head = kvHead * group + r % group;
            queries[(i / p.headDim) * MAX_D + d] = q[((r / group) * p.heads + head) * p.headDim + d] * p.scale;
        }

        float m[ROWS_PER_LANES], l[ROWS_PER_LANES];
        float acc[ROWS_PER_LANES * DIMS_PER_LANE];
        uint myLo[ROWS_PER_LANES], myHi[ROWS_PER_LANES];
        for (uint k = 0; k < ROWS_PER_LANES; k++)
        {
            m[k] = NEG_INF;
            l[k] = 0.0;
            uint t = (r0 + min(laneGroup + k * LANE_GROUPS, blockRows - 1u)) / group;
            myLo[k] = firstKey(t);
            myHi[k] = endKey(t);
            for (uint e = 0; e < DIMS_PER_LANE; e++) acc[k * DIMS_PER_LANE + e] = 0.0;
        }

        for (uint j0 = lo; j0 < hi; j0 += TILE)
        {
            uint count = min(TILE, hi - j0);
            barrier();
            for (uint i = tid; i < count * p.headDim; i += WORKGROUP)
            {
                uint c = i / p.headDim, d = i % p.headDim;
                keys[c * KEY_STRIDE + d] = CACHE(kCache, (j0 + c) * kvStride + kvOffset + d);
            }
            barrier();

            // Scores of every row slot against this lane's keys: each key value read once for all the slots.
            // A group with fewer rows than slots computes its last slots on a stand-in row and writes nothing for them.
            float s[ROWS_PER_LANES * KEYS_PER_LANE];
            for (uint i = 0; i < ROWS_PER_LANES * KEYS_PER_LANE; i++) s[i] = 0.0;
            for (uint d = 0; d < p.headDim; d++)
            {
                float key[KEYS_PER_LANE];
                for (uint e = 0; e < KEYS_PER_LANE; e++) key[e] = keys[(lane + e * ROW_LANES) * KEY_STRIDE + d];
                for (uint k = 0; k < ROWS_PER_LANES; k++)
                {
                    if (k >= slots) break;
                    uint slot = laneGroup + k * LANE_GROUPS;
                    float qd = queries[(slot < blockRows ? slot : 0u) * MAX_D + d];
                    for (uint e = 0; e < KEYS_PER_LANE; e++) s[k * KEYS_PER_LANE + e] += qd * key[e];
                }
            }

            for (uint k = 0; k < ROWS_PER_LANES; k++)
            {
                if (k >= slots) break;   // uniform: slots is the same for the whole workgroup
                bool live = laneGroup + k * LANE_GROUPS < blockRows;
                uint rowSlot = live ? laneGroup + k * LANE_GROUPS : 0u;
                float localMax = NEG_INF;
                for (uint e = 0; e < KEYS_PER_LANE; e++)
                {
                    uint c = lane + e * ROW_LANES;
                    uint j = j0 + c;
                    s[k * KEYS_PER_LANE + e] = c < count && j >= myLo[k] && j < myHi[k] ? s[k * KEYS_PER_LANE + e] : NEG_INF;
                    localMax = max(localMax, s[k * KEYS_PER_LANE + e]);
                }
                float mNew = max(m[k], rowMax(localMax));
                float base = mNew == NEG_INF ? 0.0 : mNew;
                float localSum = 0.0;
                for (uint e = 0; e < KEYS_PER_LANE; e++)
                {
                    float w = exp(s[k * KEYS_PER_LANE + e] - base);
                    if (live) weights[rowSlot * TILE + lane + e * ROW_LANES] = w;
                    localSum += w;
                }
                float correction = exp(m[k] - base);
                l[k] = l[k] * correction + rowSum(localSum);
                m[k] = mNew;
                for (uint e = 0; e < DIMS_PER_LANE; e++) acc[k * DIMS_PER_LANE + e] *= correction;
            }
            // The weights of a row are written and read by its own lane group.
#ifdef SUBGROUP
            if (subgroupRows)
            {
                subgroupMemoryBarrierShared();
                subgroupBarrier();
            }
            else barrier();
#else
            barrier();
#endif

            for (uint c = 0; c < count; c++)
            {
                uint vBase = (j0 + c) * kvStride + kvOffset;
                for (uint e = 0; e < DIMS_PER_LANE; e++)
                {
                    uint d = lane + e * ROW_LANES;
                    float v = d < p.headDim ? CACHE(vCache, vBase + d) : 0.0;
                    for (uint k = 0; k < ROWS_PER_LANES; k++)
                    {
                        uint rowSlot = laneGroup + k * LANE_GROUPS;
                        if (rowSlot >= blockRows) break;
                        acc[k * DIMS_PER_LANE + e] += weights[rowSlot * TILE + c] * v;
                    }
                }
            }
        }

        for (uint k = 0; k < ROWS_PER_LANES; k++)
        {
            uint rowSlot = laneGroup + k * LANE_GROUPS;
            if (rowSlot >= blockRows) break;
            uint r = r0 + rowSlot;
            uint head = kvHead * group + r % group;
            uint qBase = ((r / group) * p.heads + head) * p.headDim;
            if (p.splits == 1u)
            {
                float inverse = 1.0 / l[k];
                for (uint e = 0; e < DIMS_PER_LANE; e++)
                {
                    uint d = lane + e * ROW_LANES;
                    if (d < p.headDim) o[qBase + d] = acc[k * DIMS_PER_LANE + e] * inverse;
                }
            }
            else
            {
                uint base = partialBase(split, kvHead, r, rows);
                for (uint e = 0; e < DIMS_PER_LANE; e++)
                {
                    uint d = lane + e * ROW_LANES;
                    if (d < p.headDim) partial[base + d] = acc[k * DIMS_PER_LANE + e];
                }
                if (lane == 0u)
                {
                    partial[base + p.headDim] = m[k];
                    partial[base + p.headDim + 1u] = l[k];
                }
            }
        }
    }
}

#elif defined(REDUCE)

layout(local_size_x = 64) in;

void main()
{
    uint index = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (index >= p.tokens * p.heads * p.headDim) return;
    uint d = index % p.headDim;
    uint head = (index / p.headDim) % p.heads;
    uint t = index / (p.headDim * p.heads);
    uint group = p.heads / p.kvHeads;
    uint rows = p.tokens * group;
    uint kvHead = head / group;
    uint row = t * group + head % group;

    float m = NEG_INF;
    for (uint s = 0; s < p.splits; s++) m = max(m, partial[partialBase(s, kvHead, row, rows) + p.headDim]);
    float sum = 0.0, value = 0.0;
    for (uint s = 0; s < p.splits; s++)
    {
        uint base = partialBase(s, kvHead, row, rows);
        float w = exp(partial[base + p.headDim] - m);   // an empty split has maximum -inf: weight 0
        sum += partial[base + p.headDim + 1u] * w;
        value += partial[base + d] * w;
    }
    o[index] = value / sum;
}

#endif
