#version 450
// Matrix-vector product for one token (decode): y[rowOffset + r] = sum_c W[r, c] * x[c] (+ bias), decoding the
// weights' format in place. ROWS rows per workgroup; each thread reads groups of 8 weights of every row against
// the same 8 inputs, then a shared-memory tree reduction per row.
// A weight matrix larger than one storage-buffer binding is dispatched once per row chunk (rowOffset).
//
// EXPERTS: the mixture-of-experts variant. The matrix is a stack of experts of p.expertRows rows each; workgroup
// row y is routing slot s, whose expert e is read from the routing table (binding 5, layout in MoeRouting.cs), so
// only the chosen experts' rows are read: y[s, r] = W[e * expertRows + r, :] . x[s / p.tokens, :] (p.tokens is the
// number of slots sharing one input row: k for the experts' gate/up, 1 for their down projection). A chunk holds
// whole experts; a slot whose expert lies in another chunk does nothing.

#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 64;
layout(constant_id = 1) const uint ROWS = 4;  // rows per workgroup: amortises the reduction and the launch

layout(std430, binding = 1) readonly buffer InputBuffer { float x[]; };
layout(std430, binding = 2) buffer OutputBuffer { float y[]; };  // read too by FUSE_ACCUMULATE
layout(std430, binding = 3) readonly buffer BiasBuffer { float bias[]; };
#ifdef EXPERTS
layout(std430, binding = 5) readonly buffer RoutingBuffer { float routing[]; };
#endif
layout(std430, binding = 6) readonly buffer NormBuffer { float normWeight[]; };

// Row sums, then the input's sum of squares (FUSE_NORM) in the last slot.
shared float partial[(ROWS + 1) * WORKGROUP];

uint inputBase;  // first input element of the row this workgroup multiplies

// Inputs past the row end are zero: the padding weights a format decodes there (min + 0 * scale) do not count.
float x_at(uint c) { return c < p.cols ? x[inputBase + c] : 0.0; }

void main()
{
    uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    inputBase = 0;
#ifdef EXPERTS
    group = gl_WorkGroupID.x;
    uint slot = gl_WorkGroupID.y;
    uint expertStart = uint(routing[2 + 2 * slot]) * p.expertRows;  // stacked row of the expert's first row
    if (expertStart < p.rowOffset || expertStart >= p.rowOffset + p.rows) return;
    uint weightBase = expertStart - p.rowOffset;  // chunk row of the expert's first row
    uint rowsHere = p.expertRows;
    inputBase = slot / p.tokens * p.cols;
#else
    uint weightBase = 0;
    uint rowsHere = p.rows;
#endif
    uint firstRow = group * ROWS;
    if (firstRow >= rowsHere) return;
    uint tid = gl_LocalInvocationID.x;
    uint rowCount = min(ROWS, rowsHere - firstRow);
    bool norm = (p.fusion & FUSE_NORM) != 0u;
    float sum[ROWS];
    for (uint r = 0; r < ROWS; r++) sum[r] = 0.0;
    float squares = 0.0;
    for (uint c = tid * 8; c < p.cols; c += WORKGROUP * 8)
    {
        vec4 xlo = vec4(x_at(c), x_at(c + 1), x_at(c + 2), x_at(c + 3));
        vec4 xhi = vec4(x_at(c + 4), x_at(c + 5), x_at(c + 6), x_at(c + 7));
        if (norm)
        {
            squares += dot(xlo, xlo) + dot(xhi, xhi);
            for (uint i = 0; i < 4; i++)
            {
                xlo[i] *= c + i < p.cols ? normWeight[c + i] : 0.0;
                xhi[i] *= c + 4 + i < p.cols ? normWeight[c + 4 + i] : 0.0;
            }
        }
        for (uint r = 0; r < rowCount; r++)
        {
            vec4 lo, hi;
            load_weight8(weightBase + firstRow + r, c, lo, hi);
            sum[r] += dot(lo, xlo) + dot(hi, xhi);
        }
    }
    for (uint r = 0; r < ROWS; r++) partial[r * WORKGROUP + tid] = sum[r];
    partial[ROWS * WORKGROUP + tid] = squares;
    barrier();
    for (uint s = WORKGROUP / 2; s > 0; s >>= 1)
    {
        if (tid < s)
            for (uint r = 0; r <= ROWS; r++) partial[r * WORKGROUP + tid] += partial[r * WORKGROUP + tid + s];
        barrier();
    }
    float scale = norm ? 1.0 / sqrt(partial[ROWS * WORKGROUP] / float(p.cols) + p.normEps) : 1.0;
    if (tid < rowCount)
    {
#ifdef EXPERTS
        y[slot * p.expertRows + firstRow + tid] = partial[tid * WORKGROUP] * scale;
#else
        uint row = p.rowOffset + firstRow + tid;
        float value = partial[tid * WORKGROUP] * scale + (p.hasBias != 0 ? bias[row] : 0.0);
        uint outRow = row;
        if ((p.fusion & FUSE_SWIGLU) != 0u)
        {
            // Rows pair up within the workgroup (ROWS even, chunks whole pairs): the gate's thread writes.
            if ((tid & 1u) != 0u) return;
            float up = partial[(tid + 1) * WORKGROUP] * scale + (p.hasBias != 0 ? bias[row + 1] : 0.0);
            value = value / (1.0 + exp(-value)) * up;
            outRow = row / 2;
        }
        if ((p.fusion & FUSE_ACCUMULATE) != 0u) value += y[outRow];
        y[outRow] = value;
#endif
    }
}
