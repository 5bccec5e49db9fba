#version 450
// Matrix-matrix product for a batch of tokens (prefill): y[t, rowOffset + r] = sum_c W[r, c] * x[t, c] (+ bias),
// decoding the weights' format in place.
// Tiles of 64 weight rows x 64 tokens, 16 columns deep, staged in shared memory; 256 threads each compute
// a 4x4 block of outputs (rows ty + 16 i, tokens tx + 16 j).

#include "weights.glsl"

layout(local_size_x = 256) in;

layout(std430, binding = 1) readonly buffer InputBuffer { float x[]; };
layout(std430, binding = 2) writeonly buffer OutputBuffer { float y[]; };
layout(std430, binding = 3) readonly buffer BiasBuffer { float bias[]; };

const uint TILE = 64;
const uint DEPTH = 16;

shared float tileW[TILE][DEPTH + 1];
shared float tileX[TILE][DEPTH + 1];

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % 16;
    uint ty = tid / 16;
    uint rowBase = gl_WorkGroupID.x * TILE;
    uint tokenBase = gl_WorkGroupID.y * TILE;

    float acc[4][4];
    for (uint i = 0; i < 4; i++)
        for (uint j = 0; j < 4; j++)
            acc[i][j] = 0.0;

    for (uint k0 = 0; k0 < p.cols; k0 += DEPTH)
    {
        // Weights: 64 rows x 2 groups of 8 = 128 loads.
        if (tid < 128)
        {
            uint r = tid / 2;
            uint c = k0 + (tid % 2) * 8;
            vec4 lo = vec4(0.0), hi = vec4(0.0);
            if (rowBase + r < p.rows && c < p.paddedCols)
                load_weight8(rowBase + r, c, lo, hi);
            uint d = (tid % 2) * 8;
            tileW[r][d + 0] = lo.x; tileW[r][d + 1] = lo.y; tileW[r][d + 2] = lo.z; tileW[r][d + 3] = lo.w;
            tileW[r][d + 4] = hi.x; tileW[r][d + 5] = hi.y; tileW[r][d + 6] = hi.z; tileW[r][d + 7] = hi.w;
        }
        // Inputs: 64 tokens x 16 columns, 4 per thread.
        for (uint e = tid; e < TILE * DEPTH; e += 256)
        {
            uint t = e / DEPTH;
            uint c = e % DEPTH;
            uint col = k0 + c;
            tileX[t][c] = (tokenBase + t < p.tokens && col < p.cols) ? x[(tokenBase + t) * p.cols + col] : 0.0;
        }
        barrier();
        for (uint k = 0; k < DEPTH; k++)
        {
            float w[4];
            for (uint i = 0; i < 4; i++) w[i] = tileW[ty + 16 * i][k];
            for (uint j = 0; j < 4; j++)
            {
                float xv = tileX[tx + 16 * j][k];
                for (uint i = 0; i < 4; i++) acc[i][j] += w[i] * xv;
            }
        }
        barrier();
    }

    for (uint i = 0; i < 4; i++)
    {
        uint r = rowBase + ty + 16 * i;
        if (r >= p.rows) continue;
        uint outRow = p.rowOffset + r;
        float b = p.hasBias != 0 ? bias[outRow] : 0.0;
        for (uint j = 0; j < 4; j++)
        {
            uint t = tokenBase + tx + 16 * j;
            if (t < p.tokens) y[t * p.outStride + outRow] = acc[i][j] + b;
        }
    }
}
