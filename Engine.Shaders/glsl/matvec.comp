#version 450
// Matrix-vector product for one token (decode): y[rowOffset + r] = sum_c W[r, c] * x[c] (+ bias).
// One workgroup per row; each thread reads groups of 8 weights, then a shared-memory tree reduction.
// A weight matrix larger than one storage-buffer binding is dispatched once per row chunk (rowOffset).

#define WEIGHT_BINDING 0
#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 64;

layout(std430, binding = 1) readonly buffer InputBuffer { float x[]; };
layout(std430, binding = 2) writeonly buffer OutputBuffer { float y[]; };
layout(std430, binding = 3) readonly buffer BiasBuffer { float bias[]; };

layout(push_constant) uniform Push
{
    uint rows;       // rows in this chunk
    uint cols;       // true row length
    uint rowStride;  // padded row length (multiple of 8)
    uint rowOffset;  // first output row of this chunk
    uint hasBias;
} p;

shared float partial[WORKGROUP];

float x_at(uint c) { return x[min(c, p.cols - 1)]; }  // padded weights are zero, so the clamp is harmless

void main()
{
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= p.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint base = row * p.rowStride;
    float sum = 0.0;
    for (uint c = tid * 8; c < p.cols; c += WORKGROUP * 8)
    {
        vec4 lo, hi;
        load_weight8(base + c, lo, hi);
        sum += dot(lo, vec4(x_at(c), x_at(c + 1), x_at(c + 2), x_at(c + 3)))
             + dot(hi, vec4(x_at(c + 4), x_at(c + 5), x_at(c + 6), x_at(c + 7)));
    }
    partial[tid] = sum;
    barrier();
    for (uint s = WORKGROUP / 2; s > 0; s >>= 1)
    {
        if (tid < s) partial[tid] += partial[tid + s];
        barrier();
    }
    if (tid == 0)
    {
        uint out_row = p.rowOffset + row;
        y[out_row] = partial[0] + (p.hasBias != 0 ? bias[out_row] : 0.0);
    }
}
