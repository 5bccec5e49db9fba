#version 450
// Mixture-of-experts routing and combination. The routing table's layout is documented in MoeRouting.cs.
//
// MOE_ROUTE: one workgroup for the whole batch. Each thread routes tokens (softmax over the experts' logits, the k
// largest by (logit, lower index), renormalised and scaled), then the slots are grouped by expert: thread e counts
// and lists expert e's slots, with one prefix sum between, so a prefill needs no host read of the choices.
// MOE_COMBINE: out[t, d] = sum_j weight[t, j] * y[t * k + j, d] (+ sharedScale[t] * shared[t, d]), added to out
// when p.accumulate (the residual stream).

layout(local_size_x = 64) in;

#ifdef MOE_ROUTE
layout(std430, binding = 0) readonly buffer LogitBuffer { float logits[]; };
layout(std430, binding = 1) coherent buffer RoutingBuffer { float routing[]; };

layout(push_constant) uniform Push
{
    uint tokens;
    uint experts;
    uint k;
    uint normalize;
    float scale;
} p;

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint slots = p.tokens * p.k;
    if (tid == 0)
    {
        routing[0] = float(slots);
        routing[1] = float(p.experts);
    }
    for (uint t = tid; t < p.tokens; t += 64)
    {
        uint row = t * p.experts;
        float top = logits[row];
        for (uint e = 1; e < p.experts; e++) top = max(top, logits[row + e]);
        float total = 0.0;
        for (uint e = 0; e < p.experts; e++) total += exp(logits[row + e] - top);
        // Choice j is the largest (logit, -index) below choice j - 1, so no set of taken experts is kept.
        float previous = 0.0;
        uint previousIndex = 0;
        float chosen = 0.0;
        for (uint j = 0; j < p.k; j++)
        {
            uint best = p.experts;
            for (uint e = 0; e < p.experts; e++)
            {
                float v = logits[row + e];
                bool below = j == 0 || v < previous || (v == previous && e > previousIndex);
                if (below && (best == p.experts || v > logits[row + best])) best = e;
            }
            previous = logits[row + best];
            previousIndex = best;
            float weight = exp(previous - top) / total;
            chosen += weight;
            routing[2 + 2 * (t * p.k + j)] = float(best);
            routing[3 + 2 * (t * p.k + j)] = weight;
        }
        float factor = (p.normalize != 0 ? 1.0 / chosen : 1.0) * p.scale;
        for (uint j = 0; j < p.k; j++) routing[3 + 2 * (t * p.k + j)] *= factor;
    }
    memoryBarrierBuffer();
    barrier();

    uint starts = 2 + 2 * slots;  // counts first, turned into starts by the prefix sum
    for (uint e = tid; e < p.experts; e += 64)
    {
        uint count = 0;
        for (uint s = 0; s < slots; s++) count += uint(routing[2 + 2 * s]) == e ? 1 : 0;
        routing[starts + e + 1] = float(count);
    }
    memoryBarrierBuffer();
    barrier();
    if (tid == 0)
    {
        routing[starts] = 0.0;
        for (uint e = 1; e <= p.experts; e++) routing[starts + e] += routing[starts + e - 1];
    }
    memoryBarrierBuffer();
    barrier();
    uint list = starts + p.experts + 1;
    for (uint e = tid; e < p.experts; e += 64)
    {
        uint next = uint(routing[starts + e]);
        for (uint s = 0; s < slots; s++)
            if (uint(routing[2 + 2 * s]) == e) routing[list + next++] = float(s);
    }
}
#endif

#ifdef MOE_COMBINE
layout(std430, binding = 0) readonly buffer RoutingBuffer { float routing[]; };
layout(std430, binding = 1) readonly buffer ExpertBuffer { float y[]; };
layout(std430, binding = 2) readonly buffer SharedBuffer { float sharedOut[]; };
layout(std430, binding = 3) readonly buffer SharedScaleBuffer { float sharedScale[]; };
layout(std430, binding = 4) buffer OutputBuffer { float result[]; };

layout(push_constant) uniform Push
{
    uint tokens;
    uint k;
    uint dim;
    uint hasShared;
    uint hasSharedScale;
    uint accumulate;
} p;

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64;
    if (i >= p.tokens * p.dim) return;
    uint t = i / p.dim, d = i % p.dim;
    float sum = 0.0;
    for (uint j = 0; j < p.k; j++)
    {
        uint s = t * p.k + j;
        sum += routing[3 + 2 * s] * y[s * p.dim + d];
    }
    if (p.hasShared != 0) sum += (p.hasSharedScale != 0 ? sharedScale[t] : 1.0) * sharedOut[i];
    result[i] = p.accumulate != 0 ? result[i] + sum : sum;
}
#endif
