// Binary (Engine.Formats.Weights.BinaryFormat): w = s1*b1, plus s2*b2 with a second plane, b = +-1 from a sign
// bit (1 = +1); f16 scales per group of 2^p.param[0] weights along a row, p.param[1] planes.
// Stream 0: the scales, p.param[1] f16 values per group; streams 1 and 2: the sign planes, bit i of a row = weight i.


// Weights [col, col + 8) of one plane: fma(b, 2s, -s) with b in {0, 1} is exactly +-s, as the CPU reference.
void plane8(uint stream, uint row, uint col, float s, out vec4 lo, out vec4 hi)
{
    uint bits = stream_word(stream, row, col / 32u) >> (col & 24u);
    lo = fma(vec4((uvec4(bits) >> uvec4(0u, 1u, 2u, 3u)) & 1u), vec4(2.0 * s), vec4(-s));
    hi = fma(vec4((uvec4(bits) >> uvec4(4u, 5u, 6u, 7u)) & 1u), vec4(2.0 * s), vec4(-s));
}

void load_weight8(uint row, uint col, out vec4 lo, out vec4 hi)
{
    uint planes = p.param[1];
    uint first = (col >> p.param[0]) * planes;  // f16 index of the group's first scale
    vec2 scales = unpackHalf2x16(stream_word(0u, row, first / 2u));
    plane8(1u, row, col, (first & 1u) != 0u ? scales.y : scales.x, lo, hi);
    if (planes == 2u)  // the same for the whole dispatch
    {
        vec4 lo2, hi2;
        plane8(2u, row, col, scales.y, lo2, hi2);
        lo += lo2;
        hi += hi2;
    }
}

// Blocks of 32 weights (groups hold whole blocks): one word of each plane and the group's scale word; decoded.
#define WEIGHT_BLOCK 32

void plane_block(uint bits, float s, inout vec4 q[WEIGHT_BLOCK / 4])
{
    [[unroll]] for (uint i = 0u; i < 8u; i++)
        q[i] += fma(code_floats((uvec4(bits) >> (uvec4(0u, 1u, 2u, 3u) + 4u * i)) & 1u), vec4(2.0 * s), vec4(-s));
}

vec2 load_block(uint row, uint block, out vec4 q[WEIGHT_BLOCK / 4])
{
    uint planes = p.param[1];
    uint first = ((block * 32u) >> p.param[0]) * planes;  // f16 index of the group's first scale
    vec2 scales = unpackHalf2x16(stream_word(0u, row, first / 2u));
    [[unroll]] for (uint i = 0u; i < 8u; i++) q[i] = vec4(0.0);
    plane_block(stream_word(1u, row, block), (first & 1u) != 0u ? scales.y : scales.x, q);
    if (planes == 2u)  // the same for the whole dispatch
        plane_block(stream_word(2u, row, block), scales.y, q);
    return vec2(1.0, 0.0);
}
