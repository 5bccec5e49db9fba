#version 450
// Embedding lookup: out[t, :] = table[token[t], :], decoding the table's format in place. A table larger than
// one storage-buffer binding is dispatched once per row chunk; each dispatch writes only the tokens whose
// row falls in [rowStart, rowStart + rowCount).

#define WEIGHT_BINDING 0
#include "weights.glsl"

layout(local_size_x = 64) in;

layout(std430, binding = 1) readonly buffer Tokens { uint tokens[]; };
layout(std430, binding = 2) writeonly buffer Output { float o[]; };

layout(push_constant) uniform Push
{
    uint count;      // tokens
    uint cols;       // embedding width
    uint rowStride;  // padded row length
    uint rowStart;   // first table row in this chunk
    uint rowCount;   // rows in this chunk
} p;

void main()
{
    uint t = gl_WorkGroupID.x;
    if (t >= p.count) return;
    uint token = tokens[t];
    if (token < p.rowStart || token >= p.rowStart + p.rowCount) return;
    uint base = (token - p.rowStart) * p.rowStride;
    for (uint c = gl_LocalInvocationID.x; c < p.cols; c += 64)
        o[t * p.cols + c] = load_weight(base + c);
}
