#version 450
// The block Walsh-Hadamard rotation around a PCDVQ product (Engine.Formats.Weights.Hadamard), per token row:
//   input side:  dst = H (signs ⊙ src), src rows of srcLength values (zero past them), dst rows of `rowLength`;
//   output side: dst = signs ⊙ H src (+ bias).
// One workgroup transforms one block of one row in shared memory: log2(block) butterfly stages.
// EXPERTS: around an expert product (matvec.comp) of a stack of PCDVQ experts, row y is routing slot s; the signs
// are those of its expert e (stacked, rowLength per expert), and the source row is s / divisor.

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Source { float src[]; };
layout(std430, binding = 1) writeonly buffer Destination { float dst[]; };
layout(std430, binding = 2) readonly buffer Signs { float signs[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias[]; };
#ifdef EXPERTS
layout(std430, binding = 4) readonly buffer RoutingBuffer { float routing[]; };
#endif

layout(push_constant) uniform Push
{
    uint rowLength;  // transformed values per row (the padded length on the input side)
    uint srcLength;  // values per source row
    uint block;      // power of two dividing length, at most 1024
    uint outputSide; // 0: signs before the transform; 1: signs after, then the bias
    uint hasBias;
    uint divisor;    // EXPERTS: routing slots sharing one source row
} p;

shared float values[1024];

void main()
{
    uint start = gl_WorkGroupID.x * p.block;
    uint token = gl_WorkGroupID.y;
    uint tid = gl_LocalInvocationID.x;
#ifdef EXPERTS
    uint sourceRow = token / p.divisor;
    uint signBase = uint(routing[2 + 2 * token]) * p.rowLength;
#else
    uint sourceRow = token;
    uint signBase = 0;
#endif
    for (uint i = tid; i < p.block; i += 256)
    {
        uint c = start + i;
        float v = c < p.srcLength ? src[sourceRow * p.srcLength + c] : 0.0;
        values[i] = p.outputSide == 0 ? v * signs[signBase + c] : v;
    }
    barrier();
    for (uint span = 1; span < p.block; span <<= 1)
    {
        for (uint pair = tid; pair < p.block / 2; pair += 256)
        {
            uint i = (pair / span) * 2 * span + pair % span;
            float a = values[i], b = values[i + span];
            values[i] = a + b;
            values[i + span] = a - b;
        }
        barrier();
    }
    float norm = inversesqrt(float(p.block));
    for (uint i = tid; i < p.block; i += 256)
    {
        uint c = start + i;
        float v = values[i] * norm;
        if (p.outputSide != 0) v = v * signs[signBase + c] + (p.hasBias != 0 ? bias[c] : 0.0);
        dst[token * p.rowLength + c] = v;
    }
}
