// Weight storage, one variant per format: exactly one of DATA_F32, DATA_F16, DATA_BF16 is defined.
// A weight matrix is stored row-major with every row padded to a multiple of 8 weights (zeros), so a row
// starts on a 16-byte boundary and a group of 8 weights is one or two aligned vector loads.
// The including shader defines WEIGHT_BINDING.

#if defined(DATA_F32)
layout(std430, binding = WEIGHT_BINDING) readonly buffer WeightBuffer { vec4 weights[]; };

// The 8 weights starting at element `first` (a multiple of 8).
void load_weight8(uint first, out vec4 lo, out vec4 hi)
{
    lo = weights[first / 4];
    hi = weights[first / 4 + 1];
}

float load_weight(uint element)
{
    return weights[element / 4][element % 4];
}

#elif defined(DATA_F16) || defined(DATA_BF16)
layout(std430, binding = WEIGHT_BINDING) readonly buffer WeightBuffer { uvec4 weights[]; };

#if defined(DATA_F16)
vec2 unpack2(uint word) { return unpackHalf2x16(word); }
#else
// bf16 is the upper half of a float32: a shift or a mask rebuilds it exactly.
vec2 unpack2(uint word) { return vec2(uintBitsToFloat(word << 16), uintBitsToFloat(word & 0xFFFF0000u)); }
#endif

void load_weight8(uint first, out vec4 lo, out vec4 hi)
{
    uvec4 packed = weights[first / 8];
    lo = vec4(unpack2(packed.x), unpack2(packed.y));
    hi = vec4(unpack2(packed.z), unpack2(packed.w));
}

float load_weight(uint element)
{
    uint word = weights[element / 8][(element % 8) / 2];
    return unpack2(word)[element % 2];
}

#else
#error "define one of DATA_F32, DATA_F16, DATA_BF16"
#endif
