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
