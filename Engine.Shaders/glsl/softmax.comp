#version 450
// Softmax over each row, in place, with the row maximum subtracted first. One workgroup per row.

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 64;

layout(std430, binding = 0) buffer Data { float x[]; };

layout(push_constant) uniform Push
{
    uint rows;
    uint cols;
} p;

shared float reduce[WORKGROUP];

void main()
{
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= p.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint base = row * p.cols;

    float m = -1.0 / 0.0;
    for (uint i = tid; i < p.cols; i += WORKGROUP) m = max(m, x[base + i]);
    reduce[tid] = m;
    barrier();
    for (uint s = WORKGROUP / 2; s > 0; s >>= 1)
    {
        if (tid < s) reduce[tid] = max(reduce[tid], reduce[tid + s]);
        barrier();
    }
    m = reduce[0];
    barrier();

    float sum = 0.0;
    for (uint i = tid; i < p.cols; i += WORKGROUP)
    {
        float e = exp(x[base + i] - m);
        x[base + i] = e;
        sum += e;
    }
    reduce[tid] = sum;
    barrier();
    for (uint s = WORKGROUP / 2; s > 0; s >>= 1)
    {
        if (tid < s) reduce[tid] += reduce[tid + s];
        barrier();
    }
    float inv = 1.0 / reduce[0];
    for (uint i = tid; i < p.cols; i += WORKGROUP) x[base + i] *= inv;
}
