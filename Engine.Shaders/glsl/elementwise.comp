#version 450
// Element-wise ops over n floats, one variant per op:
//   OP_ADD:    out[i] = a[i] + b[i]            (residual add; out may alias a)
//   OP_SWIGLU: out[i] = silu(a[i]) * b[i]      (a = gate, b = up)
//   OP_COPY:   out[dstOffset + i] = a[srcOffset + i]   (e.g. storing keys and values into the cache)

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) buffer Out { float o[]; };

layout(push_constant) uniform Push
{
    uint count;
    uint srcOffset;
    uint dstOffset;
} p;

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= p.count) return;
#if defined(OP_ADD)
    o[i] = a[i] + b[i];
#elif defined(OP_SWIGLU)
    float g = a[i];
    o[i] = g / (1.0 + exp(-g)) * b[i];
#elif defined(OP_COPY)
    o[p.dstOffset + i] = a[p.srcOffset + i];
#else
#error "define OP_ADD, OP_SWIGLU or OP_COPY"
#endif
}
