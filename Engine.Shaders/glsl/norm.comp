#version 450
// Row norms, one workgroup per row; x and y may alias. Rows may be whole hidden vectors, single heads (Qwen3's q/k
// norms) or groups of a wider vector: element i of row r uses weight[(r*dim + i) % weightLength], so a weight spanning
// several rows is a group norm (RWKV's ln_x, Mamba-2's grouped gated norm).
//   RMS_NORM:   y = x / sqrt(mean(x^2) + eps) * w
//   LAYER_NORM: y = (x - mean) / sqrt(var + eps) * w (+ bias when hasBias)

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 64;

layout(std430, binding = 0) readonly buffer InputBuffer { float x[]; };
layout(std430, binding = 1) readonly buffer WeightBuffer { float w[]; };
layout(std430, binding = 2) buffer OutputBuffer { float y[]; };
layout(std430, binding = 3) readonly buffer BiasBuffer { float bias[]; };

layout(push_constant) uniform Push
{
    uint rows;
    uint dim;
    float eps;
    uint weightLength;
    uint hasBias;
} p;

shared float partial[WORKGROUP];

float row_sum(float value)
{
    uint tid = gl_LocalInvocationID.x;
    partial[tid] = value;
    barrier();
    for (uint s = WORKGROUP / 2; s > 0; s >>= 1)
    {
        if (tid < s) partial[tid] += partial[tid + s];
        barrier();
    }
    float total = partial[0];
    barrier();
    return total;
}

void main()
{
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= p.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint base = row * p.dim;
#if defined(LAYER_NORM)
    float sum = 0.0;
    for (uint i = tid; i < p.dim; i += WORKGROUP) sum += x[base + i];
    float mean = row_sum(sum) / float(p.dim);
    float squares = 0.0;
    for (uint i = tid; i < p.dim; i += WORKGROUP) squares += (x[base + i] - mean) * (x[base + i] - mean);
    float scale = inversesqrt(row_sum(squares) / float(p.dim) + p.eps);
#elif defined(RMS_NORM)
    const float mean = 0.0;
    float squares = 0.0;
    for (uint i = tid; i < p.dim; i += WORKGROUP) squares += x[base + i] * x[base + i];
    float scale = inversesqrt(row_sum(squares) / float(p.dim) + p.eps);
#else
#error "define RMS_NORM or LAYER_NORM"
#endif
    for (uint i = tid; i < p.dim; i += WORKGROUP)
    {
        uint k = (base + i) % p.weightLength;
        y[base + i] = (x[base + i] - mean) * scale * w[k] + (p.hasBias != 0u ? bias[k] : 0.0);
    }
}
