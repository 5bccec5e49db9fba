#version 450
// Attention for tokens at positions pos0 .. pos0 + tokens - 1 against a KV cache holding positions
// 0 .. pos0 + tokens - 1 (this step's keys and values already stored): causal (a query sees the positions up to its
// own) or, for vision encoders, not (every query sees them all). One workgroup per (head, token).
// Keys are visited in chunks of WORKGROUP positions with an online softmax (running max and sum), so any
// context length works with fixed shared memory. GQA: query head h reads kv head h / (heads / kvHeads).
// Each thread owns output dimensions tid, tid + WORKGROUP, ... (head dims up to 4 * WORKGROUP).

layout(local_size_x = 64) in;
const uint WORKGROUP = 64;
const uint MAX_HEAD_DIM = 256;

layout(std430, binding = 0) readonly buffer Queries { float q[]; };
layout(std430, binding = 1) readonly buffer Keys { float kCache[]; };
layout(std430, binding = 2) readonly buffer Values { float vCache[]; };
layout(std430, binding = 3) writeonly buffer Output { float o[]; };

layout(push_constant) uniform Push
{
    uint tokens;
    uint pos0;
    uint heads;
    uint kvHeads;
    uint headDim;
    float scale;
    uint causal;
} p;

shared float query[MAX_HEAD_DIM];
shared float weight[WORKGROUP];
shared float reduce[WORKGROUP];

void main()
{
    uint head = gl_WorkGroupID.x;
    uint t = gl_WorkGroupID.y;
    uint tid = gl_LocalInvocationID.x;
    uint kvHead = head / (p.heads / p.kvHeads);
    uint kvStride = p.kvHeads * p.headDim;
    uint qBase = (t * p.heads + head) * p.headDim;
    uint length = p.causal != 0u ? p.pos0 + t + 1 : p.pos0 + p.tokens;

    for (uint d = tid; d < p.headDim; d += WORKGROUP) query[d] = q[qBase + d];
    barrier();

    float acc[MAX_HEAD_DIM / WORKGROUP];
    for (uint k = 0; k < MAX_HEAD_DIM / WORKGROUP; k++) acc[k] = 0.0;
    float runningMax = -1.0 / 0.0;
    float runningSum = 0.0;

    for (uint start = 0; start < length; start += WORKGROUP)
    {
        uint pos = start + tid;
        float score = -1.0 / 0.0;
        if (pos < length)
        {
            uint kBase = pos * kvStride + kvHead * p.headDim;
            float s = 0.0;
            for (uint d = 0; d < p.headDim; d++) s += query[d] * kCache[kBase + d];
            score = s * p.scale;
        }
        reduce[tid] = score;
        barrier();
        for (uint s = WORKGROUP / 2; s > 0; s >>= 1)
        {
            if (tid < s) reduce[tid] = max(reduce[tid], reduce[tid + s]);
            barrier();
        }
        float newMax = max(runningMax, reduce[0]);
        barrier();
        float e = pos < length ? exp(score - newMax) : 0.0;
        weight[tid] = e;
        reduce[tid] = e;
        barrier();
        for (uint s = WORKGROUP / 2; s > 0; s >>= 1)
        {
            if (tid < s) reduce[tid] += reduce[tid + s];
            barrier();
        }
        float correction = exp(runningMax - newMax);
        runningSum = runningSum * correction + reduce[0];
        runningMax = newMax;
        uint count = min(WORKGROUP, length - start);
        for (uint k = 0; k * WORKGROUP + tid < p.headDim; k++)
        {
            uint d = k * WORKGROUP + tid;
            float sum = 0.0;
            for (uint j = 0; j < count; j++)
                sum += weight[j] * vCache[(start + j) * kvStride + kvHead * p.headDim + d];
            acc[k] = acc[k] * correction + sum;
        }
        barrier();
    }

    for (uint k = 0; k * WORKGROUP + tid < p.headDim; k++)
        o[qBase + k * WORKGROUP + tid] = acc[k] / runningSum;
}
