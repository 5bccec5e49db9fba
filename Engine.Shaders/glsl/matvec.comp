#version 450
// Matrix-vector product for one token (decode): y[rowOffset + r] = sum_c W[r, c] * x[c] (+ bias), decoding the
// weights' format in place. ROWS rows per workgroup; each thread reads groups of 8 weights of every row against
// the same 8 inputs, then a shared-memory tree reduction per row.
// A weight matrix larger than one storage-buffer binding is dispatched once per row chunk (rowOffset).

#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 64;
layout(constant_id = 1) const uint ROWS = 4;  // rows per workgroup: amortises the reduction and the launch

layout(std430, binding = 1) readonly buffer InputBuffer { float x[]; };
layout(std430, binding = 2) writeonly buffer OutputBuffer { float y[]; };
layout(std430, binding = 3) readonly buffer BiasBuffer { float bias[]; };

shared float partial[ROWS * WORKGROUP];

// Inputs past the row end are zero: the padding weights a format decodes there (min + 0 * scale) do not count.
float x_at(uint c) { return c < p.cols ? x[c] : 0.0; }

void main()
{
    uint firstRow = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * ROWS;
    if (firstRow >= p.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint rowCount = min(ROWS, p.rows - firstRow);
    float sum[ROWS];
    for (uint r = 0; r < ROWS; r++) sum[r] = 0.0;
    for (uint c = tid * 8; c < p.cols; c += WORKGROUP * 8)
    {
        vec4 xlo = vec4(x_at(c), x_at(c + 1), x_at(c + 2), x_at(c + 3));
        vec4 xhi = vec4(x_at(c + 4), x_at(c + 5), x_at(c + 6), x_at(c + 7));
        for (uint r = 0; r < rowCount; r++)
        {
            vec4 lo, hi;
            load_weight8(firstRow + r, c, lo, hi);
            sum[r] += dot(lo, xlo) + dot(hi, xhi);
        }
    }
    for (uint r = 0; r < ROWS; r++) partial[r * WORKGROUP + tid] = sum[r];
    barrier();
    for (uint s = WORKGROUP / 2; s > 0; s >>= 1)
    {
        if (tid < s)
            for (uint r = 0; r < ROWS; r++) partial[r * WORKGROUP + tid] += partial[r * WORKGROUP + tid + s];
        barrier();
    }
    if (tid < rowCount)
    {
        uint outRow = p.rowOffset + firstRow + tid;
        y[outRow] = partial[tid * WORKGROUP] + (p.hasBias != 0 ? bias[outRow] : 0.0);
    }
}
