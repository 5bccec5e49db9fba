// Tensors of IEEE halves (an f16 KV cache) in plain 32-bit storage, so no 16-bit storage feature is needed: two
// halves per uint, element 2i in the low 16 bits and 2i + 1 in the high ones (a little-endian Half[] as the host
// reads it). Reads widen exactly with unpackHalf2x16. Stores round with halfBits below, to nearest with ties to even
// in integer arithmetic: packHalf2x16 leaves its rounding to the driver, and the CPU backend's (Half)x must be
// matched bit for bit.

// The half nearest to x (ties to even), as bits: overflow gives infinity, NaN a quiet NaN, tiny values subnormals or zero.
uint halfBits(float x)
{
    uint bits = floatBitsToUint(x);
    uint sign = (bits >> 16) & 0x8000u;
    uint magnitude = bits & 0x7FFFFFFFu;
    if (magnitude >= 0x47800000u)   // 2^16 and above, infinity, NaN
        return sign | (magnitude > 0x7F800000u ? 0x7E00u : 0x7C00u);
    if (magnitude >= 0x38800000u)   // a normal half (2^-14 and above): rebias the exponent, round off 13 bits
    {
        uint rebiased = magnitude - 0x38000000u;   // (127 - 15) << 23
        // A carry out of the mantissa moves to the next exponent (to infinity from 65520 on), as it should.
        return sign | ((rebiased + 0xFFFu + ((rebiased >> 13) & 1u)) >> 13);
    }
    uint exponent = magnitude >> 23;
    if (exponent < 102u) return sign;   // below 2^-25, under half the smallest subnormal: zero
    // A subnormal half counts units of 2^-24: the mantissa (with its leading one) shifted right, rounded.
    uint mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
    uint shift = 126u - exponent;   // 14 .. 24
    uint units = mantissa >> shift;
    uint rest = mantissa & ((1u << shift) - 1u);
    uint halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (units & 1u) != 0u)) units++;
    return sign | units;   // 1024 units is the smallest normal half, bit for bit
}

// Elements 2i and 2i + 1, rounded, as one word.
uint packHalves(float even, float odd) { return halfBits(even) | (halfBits(odd) << 16); }

// Element i of a tensor of halves, given the word i / 2 that holds it.
float halfAt(uint word, uint i)
{
    vec2 pair = unpackHalf2x16(word);
    return (i & 1u) != 0u ? pair.y : pair.x;
}

// Elements 4i .. 4i + 3, given words 2i and 2i + 1.
vec4 halves4(uvec2 words) { return vec4(unpackHalf2x16(words.x), unpackHalf2x16(words.y)); }
