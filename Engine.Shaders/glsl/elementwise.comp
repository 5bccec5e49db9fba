#version 450
// Element-wise ops, one variant per op, all with the same push block:
//   OP_BINARY:   out[i] = a[i] (+ - *) b[i % bLength]   (residual add, broadcast of a row vector; out may alias a or b)
//   OP_ACTIVATE: out[i] = f(a[i])                        (f by `function`, the order of the Activation enum)
//   OP_SWIGLU:   out[i] = silu(a[i]) * b[i]              (a = gate, b = up)
//   OP_COPY:     out[dstOffset + r*dstStride + c] = a[srcOffset + r*srcStride + c], i = r*width + c; with STORE_F16
//                out holds halves (half.glsl) and invocation i writes one word, elements c and c + 1 (c even):
//                count = width*rows/2, width, dstOffset and dstStride even
//   OP_TOKEN_SHIFT: RWKV's token shift and its interpolations (IBackend.TokenShiftMix), invocation i of workgroup
//                layer z owning channel i over tokens [16z, 16z + 16): a = x [tokens][dim], b = mixes [outputs][dim],
//                out = the carried row [dim] (read by layer 0 first, then set by layer 0 alone to x's last row when
//                function & 1, so no invocation reads it after its write), tokenMixes [tokens][outputs][dim] added to
//                the mixes when function & 2, outputs 0..bLength-1 in o0..o5; count = dim, width = tokens

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
#ifdef STORE_F16
#include "half.glsl"
layout(std430, binding = 2) writeonly buffer Out { uint o[]; };
#else
layout(std430, binding = 2) buffer Out { float o[]; };
#endif

layout(push_constant) uniform Push
{
    uint count;
    uint function;   // OP_BINARY: 0 add, 1 sub, 2 mul; OP_ACTIVATE: the Activation enum
    uint bLength;
    uint width;
    uint srcOffset;
    uint srcStride;
    uint dstOffset;
    uint dstStride;
} p;

#if defined(OP_TOKEN_SHIFT)
const uint TOKEN_CHUNK = 16u;   // tokens per workgroup layer (tokenChunk in VulkanBackend.TokenShiftMix)
layout(std430, binding = 3) readonly buffer TokenMixes { float tokenMixes[]; };
layout(std430, binding = 4) writeonly buffer O0 { float o0[]; };
layout(std430, binding = 5) writeonly buffer O1 { float o1[]; };
layout(std430, binding = 6) writeonly buffer O2 { float o2[]; };
layout(std430, binding = 7) writeonly buffer O3 { float o3[]; };
layout(std430, binding = 8) writeonly buffer O4 { float o4[]; };
layout(std430, binding = 9) writeonly buffer O5 { float o5[]; };

void store(uint k, uint index, float value)
{
    switch (k)
    {
        case 0u: o0[index] = value; break;
        case 1u: o1[index] = value; break;
        case 2u: o2[index] = value; break;
        case 3u: o3[index] = value; break;
        case 4u: o4[index] = value; break;
        default: o5[index] = value; break;
    }
}
#endif

float sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }

// Abramowitz and Stegun 7.1.26 (absolute error < 1.5e-7), the formula of the CPU reference.
float erf_approx(float x)
{
    float t = 1.0 / (1.0 + 0.3275911 * abs(x));
    float poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - poly * exp(-x * x));
}

// tanh through exp of a clamped argument: large |x| must give ±1, not inf/inf.
float tanh_safe(float x)
{
    float e = exp(2.0 * clamp(x, -15.0, 15.0));
    return (e - 1.0) / (e + 1.0);
}

float activate(float x)
{
    switch (p.function)
    {
        case 0: return x * sigmoid(x);
        case 1: return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
        case 2: return 0.5 * x * (1.0 + tanh_safe(0.79788456080286536 * (x + 0.044715 * x * x * x)));
        case 3: return x * sigmoid(1.702 * x);
        case 4: return sigmoid(x);
        case 5: return x > 20.0 ? x : log(1.0 + exp(x));
        case 6: return x > 0.0 ? x * x : 0.0;
        case 7: return tanh_safe(x);
        default: return exp(x);
    }
}

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= p.count) return;
#if defined(OP_BINARY)
    float x = a[i], y = b[i % p.bLength];
    o[i] = p.function == 0u ? x + y : p.function == 1u ? x - y : x * y;
#elif defined(OP_ACTIVATE)
    o[i] = activate(a[i]);
#elif defined(OP_SWIGLU)
    o[i] = a[i] * sigmoid(a[i]) * b[i];
#elif defined(OP_COPY) && defined(STORE_F16)
    uint pairs = p.width / 2u;
    uint r = i / pairs, c = 2u * (i % pairs);
    uint from = p.srcOffset + r * p.srcStride + c;
    o[(p.dstOffset + r * p.dstStride + c) / 2u] = packHalves(a[from], a[from + 1u]);
#elif defined(OP_COPY)
    uint r = i / p.width, c = i % p.width;
    o[p.dstOffset + r * p.dstStride + c] = a[p.srcOffset + r * p.srcStride + c];
#elif defined(OP_TOKEN_SHIFT)
    // The arithmetic of Sub, Mul and Add one after another (precise: no fused multiply-add).
    uint dim = p.count, tokens = p.width, outputs = p.bLength;
    bool perToken = (p.function & 2u) != 0u;
    uint first = gl_WorkGroupID.z * TOKEN_CHUNK, end = min(tokens, first + TOKEN_CHUNK);
    float previous = first == 0u ? o[i] : a[(first - 1u) * dim + i];
    for (uint t = first; t < end; t++)
    {
        uint index = t * dim + i;
        float current = a[index];
        precise float shift = previous - current;
        for (uint k = 0u; k < outputs; k++)
        {
            precise float m = b[k * dim + i];
            if (perToken) m = m + tokenMixes[(t * outputs + k) * dim + i];
            precise float product = shift * m;
            precise float value = product + current;
            store(k, index, value);
        }
        previous = current;
    }
    if (first == 0u && (p.function & 1u) != 0u) o[i] = a[(tokens - 1u) * dim + i];
#else
#error "define OP_BINARY, OP_ACTIVATE, OP_SWIGLU, OP_COPY or OP_TOKEN_SHIFT"
#endif
}
