namespace Engine.Formats.Weights;

/// <summary>
/// Little-endian bit fields in a byte row: bit i of a row is bit i % 8 of byte i / 8, the order the shaders read as
/// 32-bit words. Fields never straddle a byte (widths 1, 2, 4, 8 at multiples of themselves).
/// </summary>
public static class BitField
{
    public static int Read(ReadOnlySpan<byte> bytes, long bit, int width) =>
        (bytes[(int)(bit >> 3)] >> (int)(bit & 7)) & ((1 << width) - 1);

    public static void Write(Span<byte> bytes, long bit, int width, int value)
    {
        int shift = (int)(bit & 7), mask = ((1 << width) - 1) << shift;
        ref byte target = ref bytes[(int)(bit >> 3)];
        target = (byte)((target & ~mask) | ((value << shift) & mask));
    }
}
