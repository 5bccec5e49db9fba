#version 450
// RMSNorm over each row: y = x / sqrt(mean(x^2) + eps) * w. One workgroup per row. Rows may be whole
// hidden vectors or single heads (Qwen3's q/k norms); x and y may alias.

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 64;

layout(std430, binding = 0) readonly buffer InputBuffer { float x[]; };
layout(std430, binding = 1) readonly buffer WeightBuffer { float w[]; };
layout(std430, binding = 2) buffer OutputBuffer { float y[]; };

layout(push_constant) uniform Push
{
    uint rows;
    uint dim;
    float eps;
} p;

shared float partial[WORKGROUP];

void main()
{
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= p.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint base = row * p.dim;
    float sum = 0.0;
    for (uint i = tid; i < p.dim; i += WORKGROUP) sum += x[base + i] * x[base + i];
    partial[tid] = sum;
    barrier();
    for (uint s = WORKGROUP / 2; s > 0; s >>= 1)
    {
        if (tid < s) partial[tid] += partial[tid + s];
        barrier();
    }
    float scale = inversesqrt(partial[0] / float(p.dim) + p.eps);
    for (uint i = tid; i < p.dim; i += WORKGROUP) y[base + i] = x[base + i] * scale * w[i];
}
