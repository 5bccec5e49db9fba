// PCDVQ (Engine.Formats.Weights.PcdvqFormat): one code per 8 weights of the rotated matrix W', decoded as
// row scale × magnitude × unit direction. The codebook (f16 [2^bits + 1][8]: directions, then the 4 magnitudes) is
// the aux buffer: at 2^14-2^16 entries (256 KiB-1 MiB) it does not fit in shared memory, so a direction is one
// 16-byte load that the caches serve. p.param[0] = direction bits (14: magnitude in the code's top 2 bits; 16: in
// stream 1). The Hadamard rotations around the product are separate dispatches (hadamard.comp).

layout(std430, binding = 4) readonly buffer CodebookQuads { uvec4 directions[]; };

void load_weight8(uint row, uint col, out vec4 lo, out vec4 hi)
{
    uint bits = p.param[0];
    uint v = col / 8;
    uint code = (stream_word(0, row, v / 2) >> (16 * (v % 2))) & 0xFFFFu;
    uint direction, magnitude, scaleStream;
    if (bits == 14)
    {
        direction = code & 0x3FFFu;
        magnitude = code >> 14;
        scaleStream = 1;
    }
    else
    {
        direction = code;
        magnitude = (stream_word(1, row, v / 16) >> (2 * (v % 16))) & 3u;
        scaleStream = 2;
    }
    // The magnitudes are the 4 halves after the last direction.
    uint magnitudeWord = aux[(1u << bits) * 4 + magnitude / 2];
    float length = uintBitsToFloat(stream_word(scaleStream, row, 0)) * unpackHalf2x16(magnitudeWord)[magnitude % 2];
    uvec4 d = directions[direction];
    lo = vec4(unpackHalf2x16(d.x), unpackHalf2x16(d.y)) * length;
    hi = vec4(unpackHalf2x16(d.z), unpackHalf2x16(d.w)) * length;
}

// Blocks of 16 weights (rows are padded to 16): two codes in one word, their magnitudes, two directions; returned
// as magnitude x direction with the row's scale as the block's factor.
#define WEIGHT_BLOCK 16

vec2 load_block(uint row, uint block, out vec4 q[WEIGHT_BLOCK / 4])
{
    uint bits = p.param[0];
    uint codes = stream_word(0u, row, block);
    uvec2 direction, magnitude;
    uint scaleStream;
    if (bits == 14u)
    {
        direction = uvec2(codes & 0x3FFFu, (codes >> 16) & 0x3FFFu);
        magnitude = uvec2((codes >> 14) & 3u, codes >> 30);
        scaleStream = 1u;
    }
    else
    {
        direction = uvec2(codes & 0xFFFFu, codes >> 16);
        uint m = stream_word(1u, row, block / 8u) >> (4u * (block % 8u));  // vectors 2 block, 2 block + 1
        magnitude = uvec2(m & 3u, (m >> 2) & 3u);
        scaleStream = 2u;
    }
    // The 4 magnitudes are the 4 halves after the last direction.
    uint table = (1u << bits) * 4u;
    vec4 magnitudes = vec4(unpackHalf2x16(aux[table]), unpackHalf2x16(aux[table + 1u]));
    float m0 = magnitudes[magnitude.x], m1 = magnitudes[magnitude.y];
    uvec4 d0 = directions[direction.x], d1 = directions[direction.y];
    q[0] = vec4(unpackHalf2x16(d0.x), unpackHalf2x16(d0.y)) * m0;
    q[1] = vec4(unpackHalf2x16(d0.z), unpackHalf2x16(d0.w)) * m0;
    q[2] = vec4(unpackHalf2x16(d1.x), unpackHalf2x16(d1.y)) * m1;
    q[3] = vec4(unpackHalf2x16(d1.z), unpackHalf2x16(d1.w)) * m1;
    return vec2(uintBitsToFloat(stream_word(scaleStream, row, 0u)), 0.0);
}
