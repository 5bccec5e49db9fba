#version 450
// Matrix-vector product for decoding: y[t, rowOffset + r] = sum_c W[r, c] * x[t, c] (+ bias) for COLS input
// columns t (1 to 8 tokens), every weight read once for all of them, its format decoded in place a block at a
// time (load_block in weights.glsl: 16-byte loads, a group's header read once).
//
// A workgroup of WORKGROUP threads computes ROWS rows: thread i takes blocks i, i + WORKGROUP, ... of every row
// and keeps ROWS x COLS partial sums; the inputs of a block (vec4 loads) are read once for all ROWS rows. The
// sums are then reduced across the workgroup: subgroupAdd, and where the workgroup holds several subgroups a
// shared-memory step across them (ONE_SUBGROUP false); REDUCE_SHARED is the variant for devices without subgroup
// arithmetic, a shared-memory tree. WORKGROUP, ROWS and the reduction are chosen per device (MatVecTuning.cs).
// A weight matrix larger than one storage-buffer binding is dispatched once per row chunk (p.rowOffset).
//
// Fusions (weights.glsl): FUSE_NORM scales the inputs by the norm weight and the result by each column's
// 1 / rms, the sum of squares taken over the p.cols inputs read anyway; FUSE_SWIGLU pairs rows 2j, 2j + 1 (ROWS
// is even); FUSE_ACCUMULATE adds to y. FUSIONS (a specialization constant) names the bits a pipeline may see,
// so the loads of an unused norm weight compile away; p.fusion says which apply. Inputs past p.cols are zero.
//
// EXPERTS: the mixture-of-experts variant (COLS 1). The matrix is a stack of experts of p.expertRows rows each;
// workgroup row y is routing slot s, whose expert e is read from the routing table (binding 5, layout in
// MoeRouting.cs), so only the chosen experts' rows are read: y[s, r] = W[e * expertRows + r, :] . x[s / p.tokens, :]
// (p.tokens is the number of slots sharing one input row: k for the experts' gate/up, 1 for their down
// projection). A chunk holds whole experts; a slot whose expert lies in another chunk does nothing.

#ifndef REDUCE_SHARED
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 64;
layout(constant_id = 1) const uint ROWS = 2;          // rows per workgroup (even: SwiGLU pairs stay together)
layout(constant_id = 2) const uint COLS = 1;          // input columns (tokens), 1 to 8
layout(constant_id = 3) const bool ONE_SUBGROUP = false;  // the workgroup is one subgroup: no shared-memory step
layout(constant_id = 4) const bool INPUT_QUADS = true;    // p.cols % 4 == 0: inputs and norm weight read as vec4
layout(constant_id = 5) const uint FUSIONS = 7u;      // FUSE_* bits a dispatch of this pipeline may set

layout(std430, binding = 1) readonly buffer InputBuffer { float x[]; };
layout(std430, binding = 1) readonly buffer InputQuads { vec4 x4[]; };
layout(std430, binding = 2) buffer OutputBuffer { float y[]; };  // read too by FUSE_ACCUMULATE
layout(std430, binding = 3) readonly buffer BiasBuffer { float bias[]; };
#ifdef EXPERTS
layout(std430, binding = 5) readonly buffer RoutingBuffer { float routing[]; };
#endif
layout(std430, binding = 6) readonly buffer NormBuffer { float normWeight[]; };
layout(std430, binding = 6) readonly buffer NormQuads { vec4 normWeight4[]; };

const uint QUADS = WEIGHT_BLOCK / 4;
const uint SUMS = ROWS * COLS + COLS;  // row sums (r * COLS + t), then each column's sum of squares

// Per thread (REDUCE_SHARED) or per subgroup: the partial sums being reduced.
shared float partial[SUMS * WORKGROUP];

// Inputs [c, c + 4) of the input row starting at `base`, zero past p.cols (clamped reads stay in the row).
vec4 input_quad(uint base, uint c)
{
    if (INPUT_QUADS)
    {
        vec4 v = x4[(base + min(c, p.cols - 4u)) / 4u];
        return c < p.cols ? v : vec4(0.0);
    }
    vec4 v;
    [[unroll]] for (uint k = 0u; k < 4u; k++)
        v[k] = c + k < p.cols ? x[base + min(c + k, p.cols - 1u)] : 0.0;
    return v;
}

vec4 norm_quad(uint c)
{
    if (INPUT_QUADS) return normWeight4[min(c, p.cols - 4u) / 4u];
    vec4 v;
    [[unroll]] for (uint k = 0u; k < 4u; k++) v[k] = normWeight[min(c + k, p.cols - 1u)];
    return v;
}

void main()
{
    uint tid = gl_LocalInvocationID.x;
#ifdef EXPERTS
    uint group = gl_WorkGroupID.x;
    uint slot = gl_WorkGroupID.y;
    uint expertStart = uint(routing[2 + 2 * slot]) * p.expertRows;  // stacked row of the expert's first row
    if (expertStart < p.rowOffset || expertStart >= p.rowOffset + p.rows) return;
    uint weightBase = expertStart - p.rowOffset;  // chunk row of the expert's first row
    uint rowsHere = p.expertRows;
    uint inputBase = slot / p.tokens * p.cols;
#else
    uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint weightBase = 0u;
    uint rowsHere = p.rows;
    uint inputBase = 0u;
#endif
    uint firstRow = group * ROWS;
    if (firstRow >= rowsHere) return;
    bool norm = (FUSIONS & FUSE_NORM) != 0u && (p.fusion & FUSE_NORM) != 0u;

    float acc[ROWS * COLS];
    float squares[COLS];
    [[unroll]] for (uint k = 0u; k < ROWS * COLS; k++) acc[k] = 0.0;
    [[unroll]] for (uint t = 0u; t < COLS; t++) squares[t] = 0.0;

    uint blocks = (p.cols + WEIGHT_BLOCK - 1u) / WEIGHT_BLOCK;  // blocks past the inputs multiply zeros
    for (uint b = tid; b < blocks; b += WORKGROUP)
    {
        uint c = b * WEIGHT_BLOCK;
        vec4 scale[QUADS];  // the norm weight of the block's inputs
        if (norm)
            [[unroll]] for (uint i = 0u; i < QUADS; i++) scale[i] = norm_quad(c + 4u * i);
        if (COLS <= ROWS)
        {
            // Inputs first, held for every row: COLS blocks of inputs in registers.
            vec4 xs[COLS * QUADS];
            float xsum[COLS];
            [[unroll]] for (uint t = 0u; t < COLS; t++)
            {
                vec4 s4 = vec4(0.0);
                [[unroll]] for (uint i = 0u; i < QUADS; i++)
                {
                    vec4 v = input_quad(inputBase + t * p.cols, c + 4u * i);
                    if (norm)
                    {
                        squares[t] += dot(v, v);
                        v *= scale[i];
                    }
                    xs[t * QUADS + i] = v;
                    s4 += v;
                }
                xsum[t] = s4.x + s4.y + s4.z + s4.w;
            }
            [[unroll]] for (uint r = 0u; r < ROWS; r++)
            {
                vec4 q[QUADS];
                vec2 affine = load_block(weightBase + min(firstRow + r, rowsHere - 1u), b, q);
                [[unroll]] for (uint t = 0u; t < COLS; t++)
                {
                    vec4 d4 = q[0] * xs[t * QUADS];
                    [[unroll]] for (uint i = 1u; i < QUADS; i++) d4 = fma(q[i], xs[t * QUADS + i], d4);
                    float d = d4.x + d4.y + d4.z + d4.w;
                    acc[r * COLS + t] += d * affine.x + affine.y * xsum[t];
                }
            }
        }
        else
        {
            // Weights first, held for every column: ROWS decoded blocks in registers, the inputs streamed.
            vec4 q[ROWS * QUADS];
            vec2 affine[ROWS];
            [[unroll]] for (uint r = 0u; r < ROWS; r++)
            {
                vec4 qr[QUADS];
                affine[r] = load_block(weightBase + min(firstRow + r, rowsHere - 1u), b, qr);
                [[unroll]] for (uint i = 0u; i < QUADS; i++) q[r * QUADS + i] = qr[i];
            }
            [[unroll]] for (uint t = 0u; t < COLS; t++)
            {
                vec4 d4[ROWS];
                [[unroll]] for (uint r = 0u; r < ROWS; r++) d4[r] = vec4(0.0);
                vec4 s4 = vec4(0.0);
                [[unroll]] for (uint i = 0u; i < QUADS; i++)
                {
                    vec4 v = input_quad(inputBase + t * p.cols, c + 4u * i);
                    if (norm)
                    {
                        squares[t] += dot(v, v);
                        v *= scale[i];
                    }
                    s4 += v;
                    [[unroll]] for (uint r = 0u; r < ROWS; r++) d4[r] = fma(q[r * QUADS + i], v, d4[r]);
                }
                float xsum = s4.x + s4.y + s4.z + s4.w;
                [[unroll]] for (uint r = 0u; r < ROWS; r++)
                    acc[r * COLS + t] += (d4[r].x + d4[r].y + d4[r].z + d4[r].w) * affine[r].x + affine[r].y * xsum;
            }
        }
    }

    // Reduce: afterwards every thread holds the workgroup's totals in acc and squares.
#ifdef REDUCE_SHARED
    [[unroll]] for (uint k = 0u; k < ROWS * COLS; k++) partial[k * WORKGROUP + tid] = acc[k];
    [[unroll]] for (uint t = 0u; t < COLS; t++) partial[(ROWS * COLS + t) * WORKGROUP + tid] = squares[t];
    barrier();
    for (uint s = WORKGROUP / 2u; s > 0u; s >>= 1)
    {
        if (tid < s)
            for (uint k = 0u; k < SUMS; k++) partial[k * WORKGROUP + tid] += partial[k * WORKGROUP + tid + s];
        barrier();
    }
    [[unroll]] for (uint k = 0u; k < ROWS * COLS; k++) acc[k] = partial[k * WORKGROUP];
    [[unroll]] for (uint t = 0u; t < COLS; t++) squares[t] = partial[(ROWS * COLS + t) * WORKGROUP];
#else
    [[unroll]] for (uint k = 0u; k < ROWS * COLS; k++) acc[k] = subgroupAdd(acc[k]);
    if (norm)
        [[unroll]] for (uint t = 0u; t < COLS; t++) squares[t] = subgroupAdd(squares[t]);
    if (!ONE_SUBGROUP)
    {
        if (gl_SubgroupInvocationID == 0u)
        {
            [[unroll]] for (uint k = 0u; k < ROWS * COLS; k++) partial[k * WORKGROUP + gl_SubgroupID] = acc[k];
            [[unroll]] for (uint t = 0u; t < COLS; t++) partial[(ROWS * COLS + t) * WORKGROUP + gl_SubgroupID] = squares[t];
        }
        barrier();
        [[unroll]] for (uint k = 0u; k < SUMS; k++)
        {
            float total = 0.0;
            for (uint s = 0u; s < gl_NumSubgroups; s++) total += partial[k * WORKGROUP + s];
            if (k < ROWS * COLS) acc[k] = total;
            else squares[k - ROWS * COLS] = total;
        }
    }
#endif

    float inverseRms[COLS];
    [[unroll]] for (uint t = 0u; t < COLS; t++)
        inverseRms[t] = norm ? 1.0 / sqrt(squares[t] / float(p.cols) + p.normEps) : 1.0;

    // Outputs: thread tid writes those whose index (row-major over rows, or SwiGLU pairs, by column) is tid mod WORKGROUP.
#ifdef EXPERTS
    [[unroll]] for (uint r = 0u; r < ROWS; r++)
        if (r % WORKGROUP == tid && firstRow + r < rowsHere)
            y[slot * p.expertRows + firstRow + r] = acc[r] * inverseRms[0];
#else
    bool swiglu = (FUSIONS & FUSE_SWIGLU) != 0u && (p.fusion & FUSE_SWIGLU) != 0u;
    bool accumulate = (FUSIONS & FUSE_ACCUMULATE) != 0u && (p.fusion & FUSE_ACCUMULATE) != 0u;
    [[unroll]] for (uint r = 0u; r < ROWS; r++)
    {
        uint row = p.rowOffset + firstRow + r;
        [[unroll]] for (uint t = 0u; t < COLS; t++)
        {
            uint index = swiglu ? (r / 2u) * COLS + t : r * COLS + t;
            if (index % WORKGROUP != tid || firstRow + r >= rowsHere || (swiglu && (r & 1u) != 0u)) continue;
            float value = acc[r * COLS + t] * inverseRms[t] + (p.hasBias != 0u ? bias[row] : 0.0);
            uint outRow = row;
            if (swiglu)
            {
                // The up row r + 1 is in this workgroup: ROWS is even and chunks hold whole pairs.
                float up = acc[min(r + 1u, ROWS - 1u) * COLS + t] * inverseRms[t] + (p.hasBias != 0u ? bias[row + 1u] : 0.0);
                value = value / (1.0 + exp(-value)) * up;
                outRow = row / 2u;
            }
            uint o = t * p.outStride + outRow;
            if (accumulate) value += y[o];
            y[o] = value;
        }
    }
#endif
}
