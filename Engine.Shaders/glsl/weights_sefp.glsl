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
// block's exponent (group 32) or two (group 16); decoded.
#define WEIGHT_BLOCK 32

vec2 load_block(uint row, uint block, out vec4 q[WEIGHT_BLOCK / 4])
{
    uint m = p.param[1];
    uvec4 magnitude[8];
    [[unroll]] for (uint i = 0u; i < 8u; i++) magnitude[i] = uvec4(0u);
    for (uint k = 0u; k < m; k++)
    {
        uint bits = stream_word(2u + k, row, block);
        [[unroll]] for (uint i = 0u; i < 8u; i++)
            magnitude[i] = (magnitude[i] << 1) | ((uvec4(bits) >> (uvec4(0u, 1u, 2u, 3u) + 4u * i)) & 1u);
    }
    uint signs = stream_word(1u, row, block);
    // Groups of 16 start an even group here, so both exponents lie in one word.
    uint g = block * 32u / p.param[0];
    uint exponents = stream_word(0u, row, g / 4u) >> (8u * (g % 4u));
    uint e0 = exponents & 0xFFu;
    uint e1 = p.param[0] == 16u ? (exponents >> 8) & 0xFFu : e0;
    // 2^(e - 127 + 1 - m) is at least 2^-132 for a live group (e >= 1): exact, as ldexp is, even where subnormal.
    float middle = m < p.param[2] ? 0.5 : 0.0;
    float s0 = e0 == 0u ? 0.0 : ldexp(1.0, int(e0) - 126 - int(m));
    float s1 = e1 == 0u ? 0.0 : ldexp(1.0, int(e1) - 126 - int(m));
    [[unroll]] for (uint i = 0u; i < 8u; i++)
    {
        vec4 sign = vec4(1.0) - 2.0 * code_floats((uvec4(signs) >> (uvec4(0u, 1u, 2u, 3u) + 4u * i)) & 1u);
        q[i] = (code_floats(magnitude[i]) + middle) * sign * (i < 4u ? s0 : s1);
    }
    return vec2(1.0, 0.0);
}
