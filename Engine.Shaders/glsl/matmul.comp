#version 450
// Matrix-matrix product for a batch of tokens (prefill): y[t, rowOffset + r] = sum_c W[r, c] * x[t, c] (+ bias),
// decoding the weights' format in place.
// Tiles of 64 weight rows x 64 tokens, 16 columns deep, staged in shared memory; 256 threads each compute
// a 4x4 block of outputs (rows 4 ty + i, so SwiGLU pairs stay in one thread; tokens tx + 16 j). Fusions: weights.glsl.
//
// EXPERTS: the mixture-of-experts variant (prefill). Workgroup z is expert e; its "tokens" are the routing slots
// grouped under e in the routing table (binding 5, layout in MoeRouting.cs), so each expert multiplies its own
// slots as one tiled product: y[s, r] = W[e * p.expertRows + r, :] . x[s / p.tokens, :] (p.tokens: slots sharing
// one input row). Workgroup y tiles an expert's slots; tiles past its count, and experts in another chunk, exit.

#include "weights.glsl"

layout(local_size_x = 256) in;

layout(std430, binding = 1) readonly buffer InputBuffer { float x[]; };
layout(std430, binding = 2) buffer OutputBuffer { float y[]; };  // read too by FUSE_ACCUMULATE
layout(std430, binding = 3) readonly buffer BiasBuffer { float bias[]; };
#ifdef EXPERTS
layout(std430, binding = 5) readonly buffer RoutingBuffer { float routing[]; };
#endif
layout(std430, binding = 6) readonly buffer NormBuffer { float normWeight[]; };

const uint TILE = 64;
const uint DEPTH = 16;

shared float tileW[TILE][DEPTH + 1];
shared float tileX[TILE][DEPTH + 1];
shared float tokenSquares[TILE][DEPTH + 1];  // FUSE_NORM: per token, partial sums of x^2 by column lane

#ifdef EXPERTS
uint list;  // routing-table index of the first slot of this expert
uint input_row(uint i) { return uint(routing[list + i]) / p.tokens; }
uint output_row(uint i) { return uint(routing[list + i]); }
#else
uint input_row(uint i) { return i; }
#endif

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % 16;
    uint ty = tid / 16;
    uint rowBase = gl_WorkGroupID.x * TILE;
    uint tokenBase = gl_WorkGroupID.y * TILE;
#ifdef EXPERTS
    uint slots = uint(routing[0]);
    uint expert = gl_WorkGroupID.z;
    uint groupStart = uint(routing[2 + 2 * slots + expert]);
    uint count = uint(routing[3 + 2 * slots + expert]) - groupStart;
    list = 3 + 2 * slots + uint(routing[1]) + groupStart;
    uint expertStart = expert * p.expertRows;
    if (tokenBase >= count || expertStart < p.rowOffset || expertStart >= p.rowOffset + p.rows) return;
    uint weightBase = expertStart - p.rowOffset;
    uint rowsHere = p.expertRows;
#else
    uint count = p.tokens;
    uint weightBase = 0;
    uint rowsHere = p.rows;
#endif

    bool norm = (p.fusion & FUSE_NORM) != 0u;
    float acc[4][4];
    for (uint i = 0; i < 4; i++)
        for (uint j = 0; j < 4; j++)
            acc[i][j] = 0.0;
    float squares[4] = float[4](0.0, 0.0, 0.0, 0.0);  // tokens tid / DEPTH + 16 m, this thread's columns

    for (uint k0 = 0; k0 < p.cols; k0 += DEPTH)
    {
        // Weights: 64 rows x 2 groups of 8 = 128 loads.
        if (tid < 128)
        {
            uint r = tid / 2;
            uint c = k0 + (tid % 2) * 8;
            vec4 lo = vec4(0.0), hi = vec4(0.0);
            if (rowBase + r < rowsHere && c < p.paddedCols)
                load_weight8(weightBase + rowBase + r, c, lo, hi);
            uint d = (tid % 2) * 8;
            tileW[r][d + 0] = lo.x; tileW[r][d + 1] = lo.y; tileW[r][d + 2] = lo.z; tileW[r][d + 3] = lo.w;
            tileW[r][d + 4] = hi.x; tileW[r][d + 5] = hi.y; tileW[r][d + 6] = hi.z; tileW[r][d + 7] = hi.w;
        }
        // Inputs: 64 tokens x 16 columns, 4 per thread.
        for (uint m = 0; m < 4; m++)
        {
            uint e = tid + 256 * m;
            uint t = e / DEPTH;
            uint c = e % DEPTH;
            uint col = k0 + c;
            float value = (tokenBase + t < count && col < p.cols) ? x[input_row(tokenBase + t) * p.cols + col] : 0.0;
            if (norm && col < p.cols)
            {
                squares[m] += value * value;
                value *= normWeight[col];
            }
            tileX[t][c] = value;
        }
        barrier();
        for (uint k = 0; k < DEPTH; k++)
        {
            float w[4];
            for (uint i = 0; i < 4; i++) w[i] = tileW[4 * ty + i][k];
            for (uint j = 0; j < 4; j++)
            {
                float xv = tileX[tx + 16 * j][k];
                for (uint i = 0; i < 4; i++) acc[i][j] += w[i] * xv;
            }
        }
        barrier();
    }

    float scale[4] = float[4](1.0, 1.0, 1.0, 1.0);  // tokens tx + 16 j
    if (norm)
    {
        for (uint m = 0; m < 4; m++) tokenSquares[tid / DEPTH + 16 * m][tid % DEPTH] = squares[m];
        barrier();
        for (uint j = 0; j < 4; j++)
        {
            float total = 0.0;
            for (uint c = 0; c < DEPTH; c++) total += tokenSquares[tx + 16 * j][c];
            scale[j] = 1.0 / sqrt(total / float(p.cols) + p.normEps);
        }
    }

    bool swiglu = (p.fusion & FUSE_SWIGLU) != 0u;
    for (uint i = 0; i < 4; i++)
    {
        uint r = rowBase + 4 * ty + i;
        if (r >= rowsHere) continue;
#ifdef EXPERTS
        for (uint j = 0; j < 4; j++)
        {
            uint t = tokenBase + tx + 16 * j;
            if (t < count) y[output_row(t) * p.expertRows + r] = acc[i][j] * scale[j];
        }
#else
        uint row = p.rowOffset + r;
        float b = p.hasBias != 0 ? bias[row] : 0.0;
        if (swiglu && (i & 1u) != 0u) continue;  // the up row: used by its gate row below
        float bUp = swiglu && p.hasBias != 0 ? bias[row + 1] : 0.0;
        for (uint j = 0; j < 4; j++)
        {
            uint t = tokenBase + tx + 16 * j;
            if (t >= p.tokens) continue;
            float value = acc[i][j] * scale[j] + b;
            uint outRow = row;
            if (swiglu)
            {
                float up = acc[i + 1][j] * scale[j] + bUp;
                value = value / (1.0 + exp(-value)) * up;
                outRow = row / 2;
            }
            uint o = t * p.outStride + outRow;
            if ((p.fusion & FUSE_ACCUMULATE) != 0u) value += y[o];
            y[o] = value;
        }
#endif
    }
}
