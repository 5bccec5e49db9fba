#version 450
// Embedding lookup: out[t, :] = table[token[t], :], decoding the table's format in place. A table larger than
// one storage-buffer binding is dispatched once per row chunk; each dispatch writes only the tokens whose
// row falls in [rowOffset, rowOffset + rows).

#include "weights.glsl"

layout(local_size_x = 64) in;

layout(std430, binding = 1) readonly buffer Tokens { uint tokens[]; };
layout(std430, binding = 2) writeonly buffer Output { float o[]; };

void main()
{
    uint t = gl_WorkGroupID.x;
    if (t >= p.tokens) return;
    uint token = tokens[t];
    if (token < p.rowOffset || token >= p.rowOffset + p.rows) return;
    for (uint c = gl_LocalInvocationID.x * 8; c < p.cols; c += 64 * 8)
    {
        vec4 lo, hi;
        load_weight8(token - p.rowOffset, c, lo, hi);
        float w[8] = float[8](lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
        for (uint i = 0; i < 8 && c + i < p.cols; i++) o[t * p.cols + c + i] = w[i];
    }
}
