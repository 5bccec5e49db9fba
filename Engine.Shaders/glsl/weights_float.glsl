// f32, f16, bf16: one stream, rows padded to 8 weights on the device, so 8 weights are one or two 16-byte loads.

#if defined(DATA_F32)
void load_weight8(uint row, uint col, out vec4 lo, out vec4 hi)
{
    uint quad = (p.streamOffset[0] + row * p.streamStride[0] + col) / 4;
    lo = uintBitsToFloat(quads[quad]);
    hi = uintBitsToFloat(quads[quad + 1]);
}
#else
#if defined(DATA_F16)
vec2 unpack2(uint word) { return unpackHalf2x16(word); }
#else
// bf16 is the upper half of a float32: a shift or a mask rebuilds it exactly.
vec2 unpack2(uint word) { return vec2(uintBitsToFloat(word << 16), uintBitsToFloat(word & 0xFFFF0000u)); }
#endif

void load_weight8(uint row, uint col, out vec4 lo, out vec4 hi)
{
    uvec4 packed = quads[(p.streamOffset[0] + row * p.streamStride[0] + col / 2) / 4];
    lo = vec4(unpack2(packed.x), unpack2(packed.y));
    hi = vec4(unpack2(packed.z), unpack2(packed.w));
}
#endif

// Blocks of 8 weights, the rows' padding: one 16-byte load (f16, bf16) or two (f32), decoded.
#define WEIGHT_BLOCK 8

vec2 load_block(uint row, uint block, out vec4 q[WEIGHT_BLOCK / 4])
{
    load_weight8(row, block * 8u, q[0], q[1]);
    return vec2(1.0, 0.0);
}
