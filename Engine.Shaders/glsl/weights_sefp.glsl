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
