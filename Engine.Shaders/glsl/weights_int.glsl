// Group integer q8/q4/q3/q2 (Engine.Formats.Weights.GroupIntFormat): w = fma(q, scale, min), an unsigned code q
// and an f16 scale and minimum per group of 2^p.param[0] weights along a row.
// Stream 0: one word per group, the scale in its low half, the minimum in its high half.
// Stream 1: the codes, blocks of 32 weights in `bits` words: q8, q4, q2 pack code i of a row at bits
// [i*bits, (i+1)*bits); q3 keeps the low two bits of a block's codes in its words 0-1 as q2 does and the third
// bits in word 2. Every layout gives 8 codes from one or two whole words and one header word.

#if defined(DATA_Q8)
layout(std430, binding = 0) readonly buffer WeightPairs { uvec2 pairs[]; };  // the same bytes, for 8-byte loads

// Rows of stream 1 hold whole 32-byte blocks and start 16-byte aligned, so 8 codes are one aligned 8-byte load.
void codes8(uint row, uint col, out uvec4 lo, out uvec4 hi)
{
    uvec2 w = pairs[(p.streamOffset[1] + row * p.streamStride[1] + col / 4u) / 2u];
    lo = (uvec4(w.x) >> uvec4(0u, 8u, 16u, 24u)) & 0xFFu;
    hi = (uvec4(w.y) >> uvec4(0u, 8u, 16u, 24u)) & 0xFFu;
}
#elif defined(DATA_Q4)
void codes8(uint row, uint col, out uvec4 lo, out uvec4 hi)
{
    uint w = stream_word(1u, row, col / 8u);
    lo = (uvec4(w) >> uvec4(0u, 4u, 8u, 12u)) & 0xFu;
    hi = (uvec4(w) >> uvec4(16u, 20u, 24u, 28u)) & 0xFu;
}
#else
// q2 and q3 share the 2-bit fields: 16 codes a word, the 8 wanted in its low or high half.
#if defined(DATA_Q2)
uint low_bits16(uint row, uint col) { return stream_word(1u, row, col / 16u) >> ((col & 8u) * 2u); }
#else
uint low_bits16(uint row, uint col) { return stream_word(1u, row, col / 32u * 3u + ((col >> 4) & 1u)) >> ((col & 8u) * 2u); }
#endif

void codes8(uint row, uint col, out uvec4 lo, out uvec4 hi)
{
    uint w = low_bits16(row, col);
    lo = (uvec4(w) >> uvec4(0u, 2u, 4u, 6u)) & 3u;
    hi = (uvec4(w) >> uvec4(8u, 10u, 12u, 14u)) & 3u;
#if defined(DATA_Q3)
    uint third = stream_word(1u, row, col / 32u * 3u + 2u) >> (col & 24u);
    lo |= ((uvec4(third) >> uvec4(0u, 1u, 2u, 3u)) & 1u) << 2;
    hi |= ((uvec4(third) >> uvec4(4u, 5u, 6u, 7u)) & 1u) << 2;
#endif
}
#endif

void load_weight8(uint row, uint col, out vec4 lo, out vec4 hi)
{
    vec2 header = unpackHalf2x16(stream_word(0u, row, col >> p.param[0]));  // (scale, min)
    uvec4 qlo, qhi;
    codes8(row, col, qlo, qhi);
    // precise: fused, one rounding, exactly as the CPU reference
    precise vec4 wlo = fma(vec4(qlo), header.xxxx, header.yyyy);
    precise vec4 whi = fma(vec4(qhi), header.xxxx, header.yyyy);
    lo = wlo;
    hi = whi;
}

// Blocks of 32 weights (groups hold whole blocks): the codes and the group's (scale, min), its header word read
// once. q8: two 16-byte loads; q4: one; q2: one 8-byte load; q3: its three words (rows of 3-word blocks are
// only 4-byte aligned).
#define WEIGHT_BLOCK 32

#if defined(DATA_Q2)
layout(std430, binding = 0) readonly buffer WeightPairs { uvec2 pairs[]; };
#endif

// Codes of one word of 8-bit, 4-bit or 2-bit fields: 4 a quad, word bits 0.. in order.
void codes_of_word8(uint w, out vec4 q0)
{
    q0 = code_floats((uvec4(w) >> uvec4(0u, 8u, 16u, 24u)) & 0xFFu);
}

void codes_of_word4(uint w, out vec4 q0, out vec4 q1)
{
    q0 = code_floats((uvec4(w) >> uvec4(0u, 4u, 8u, 12u)) & 0xFu);
    q1 = code_floats((uvec4(w) >> uvec4(16u, 20u, 24u, 28u)) & 0xFu);
}

void codes_of_word2(uint w, out vec4 q0, out vec4 q1, out vec4 q2, out vec4 q3)
{
    q0 = code_floats((uvec4(w) >> uvec4(0u, 2u, 4u, 6u)) & 3u);
    q1 = code_floats((uvec4(w) >> uvec4(8u, 10u, 12u, 14u)) & 3u);
    q2 = code_floats((uvec4(w) >> uvec4(16u, 18u, 20u, 22u)) & 3u);
    q3 = code_floats((uvec4(w) >> uvec4(24u, 26u, 28u, 30u)) & 3u);
}

vec2 load_block(uint row, uint block, out vec4 q[WEIGHT_BLOCK / 4])
{
    vec2 header = unpackHalf2x16(stream_word(0u, row, (block * 32u) >> p.param[0]));  // (scale, min)
#if defined(DATA_Q8)
    uint index = stream_index(1u, row, block * 8u) / 4u;
    uvec4 a = quads[index];
    uvec4 b = quads[index + 1u];
    codes_of_word8(a.x, q[0]);
    codes_of_word8(a.y, q[1]);
    codes_of_word8(a.z, q[2]);
    codes_of_word8(a.w, q[3]);
    codes_of_word8(b.x, q[4]);
    codes_of_word8(b.y, q[5]);
    codes_of_word8(b.z, q[6]);
    codes_of_word8(b.w, q[7]);
#elif defined(DATA_Q4)
    uvec4 a = quads[stream_index(1u, row, block * 4u) / 4u];
    codes_of_word4(a.x, q[0], q[1]);
    codes_of_word4(a.y, q[2], q[3]);
    codes_of_word4(a.z, q[4], q[5]);
    codes_of_word4(a.w, q[6], q[7]);
#elif defined(DATA_Q2)
    uvec2 a = pairs[stream_index(1u, row, block * 2u) / 2u];
    codes_of_word2(a.x, q[0], q[1], q[2], q[3]);
    codes_of_word2(a.y, q[4], q[5], q[6], q[7]);
#else
    uint index = stream_index(1u, row, block * 3u);
    uint low0 = words[index], low1 = words[index + 1u], third = words[index + 2u];
    // Codes 0-15 in low0, 16-31 in low1, two bits each; bit i of `third` is code i's bit 2.
    [[unroll]] for (uint i = 0u; i < 8u; i++)
    {
        uvec4 low = (uvec4(i < 4u ? low0 : low1) >> (uvec4(0u, 2u, 4u, 6u) + 8u * (i & 3u))) & 3u;
        q[i] = code_floats(low | (((uvec4(third) >> (uvec4(0u, 1u, 2u, 3u) + 4u * i)) & 1u) << 2));
    }
#endif
    return header;
}
