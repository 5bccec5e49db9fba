// SEFP (Engine.Formats.Weights.SefpFormat): a shared exponent byte per group of p.param[0] weights, a sign plane and
// magnitude bit-planes, most significant first, one stream each. Precision m = p.param[1] reads only the first m
// planes; below the stored p.param[2] bits the truncated magnitude is decoded at the middle of its interval.
// 8 weights at `col` are one byte of a 32-bit word in every plane read.

void load_weight8(uint row, uint col, out vec4 lo, out vec4 hi)
{
    uint g = col / p.param[0];
    uint exponent = (stream_word(0, row, g / 4) >> (8 * (g % 4))) & 0xFFu;
    uint word = col / 32;
    uint shift = col % 32;
    uint m = p.param[1];
    const uvec4 lanesLo = uvec4(0, 1, 2, 3);
    const uvec4 lanesHi = uvec4(4, 5, 6, 7);
    uvec4 qlo = uvec4(0), qhi = uvec4(0);
    for (uint k = 0; k < m; k++)
    {
        uint bits = stream_word(2 + k, row, word) >> shift;
        qlo = (qlo << 1) | ((uvec4(bits) >> lanesLo) & 1u);
        qhi = (qhi << 1) | ((uvec4(bits) >> lanesHi) & 1u);
    }
    uint signs = stream_word(1, row, word) >> shift;
    vec4 signLo = vec4(1.0) - 2.0 * vec4((uvec4(signs) >> lanesLo) & 1u);
    vec4 signHi = vec4(1.0) - 2.0 * vec4((uvec4(signs) >> lanesHi) & 1u);
    float middle = m < p.param[2] ? 0.5 : 0.0;
    // ldexp is exact, unlike exp2 on some implementations; exponent 0 marks an all-zero group.
    ivec4 scale = ivec4(int(exponent) - 127 + 1 - int(m));
    float live = exponent == 0u ? 0.0 : 1.0;
    lo = ldexp((vec4(qlo) + middle) * signLo * live, scale);
    hi = ldexp((vec4(qhi) + middle) * signHi * live, scale);
}

// Blocks of 32 weights: one word of the sign plane and of each of the m magnitude planes, and the word holding the
// block's exponent (group 32) or two (group 16); decoded. The planes are gathered a word at a time: the magnitudes
// of weights 4g..4g+3 build up in the 4 bytes of word g (m <= 7 bits each), each plane's 4 bits of them spread to
// the bytes' low bits by one multiplication, so a plane costs a few operations per 4 weights, not per weight.
#define WEIGHT_BLOCK 32

// Bit i of n (4 bits) to bit 8i: the copies n * 2^(7k) do not overlap, so nothing carries.
uint spread4(uint n)
{
    return (n * 0x00204081u) & 0x01010101u;
}

vec2 load_block(uint row, uint block, out vec4 q[WEIGHT_BLOCK / 4])
{
    uint m = p.param[1];
    uint magnitudes[8];
    [[unroll]] for (uint g = 0u; g < 8u; g++) magnitudes[g] = 0u;
    for (uint k = 0u; k < m; k++)
    {
        uint bits = stream_word(2u + k, row, block);
        [[unroll]] for (uint g = 0u; g < 8u; g++) magnitudes[g] = (magnitudes[g] << 1) | spread4((bits >> (4u * g)) & 0xFu);
    }
    uint signs = stream_word(1u, row, block);
    // Groups of 16 start an even group here, so both exponents lie in one word.
    uint group = block * 32u / p.param[0];
    uint exponents = stream_word(0u, row, group / 4u) >> (8u * (group % 4u));
    uint e0 = exponents & 0xFFu;
    uint e1 = p.param[0] == 16u ? (exponents >> 8) & 0xFFu : e0;
    // 2^(e - 127 + 1 - m) is at least 2^-132 for a live group (e >= 1): exact, as ldexp is, even where subnormal.
    float middle = m < p.param[2] ? 0.5 : 0.0;
    float s0 = e0 == 0u ? 0.0 : ldexp(1.0, int(e0) - 126 - int(m));
    float s1 = e1 == 0u ? 0.0 : ldexp(1.0, int(e1) - 126 - int(m));
    [[unroll]] for (uint g = 0u; g < 8u; g++)
    {
        // q + middle, exactly: (2^23 + q) - (2^23 - middle), as code_floats; then the sign bit of weight 4g + i.
        uvec4 codes = (uvec4(magnitudes[g]) >> uvec4(0u, 8u, 16u, 24u)) & 0xFFu;
        vec4 magnitude = uintBitsToFloat(codes | 0x4B000000u) - (8388608.0 - middle);
        uvec4 sign = (uvec4(signs) << (uvec4(31u, 30u, 29u, 28u) - 4u * g)) & 0x80000000u;
        q[g] = uintBitsToFloat(floatBitsToUint(magnitude) ^ sign) * (g < 4u ? s0 : s1);
    }
    return vec2(1.0, 0.0);
}
