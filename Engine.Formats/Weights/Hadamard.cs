using System.Numerics;

namespace Engine.Formats.Weights;

/// <summary>
/// The normalized Walsh-Hadamard transform, block-diagonal over the largest power-of-two block (at most
/// <see cref="MaxBlock"/>) that divides the length: 384 → blocks of 128, 11008 → 256, 4096 → 1024, 67 → 1 (identity).
/// Orthonormal and symmetric, so it is its own inverse. The Vulkan hadamard.comp applies the same transform.
/// </summary>
public static class Hadamard
{
    /// <summary>Largest block: the shader keeps a block in shared memory.</summary>
    public const int MaxBlock = 1024;

    public static int BlockSize(long length) => (int)Math.Min(MaxBlock, 1L << BitOperations.TrailingZeroCount(length));

    /// <summary>Transforms <paramref name="values"/> in place, block by block.</summary>
    public static void Transform(Span<double> values, int block)
    {
        double norm = 1 / Math.Sqrt(block);
        for (int start = 0; start < values.Length; start += block)
        {
            var b = values.Slice(start, block);
            for (int half = 1; half < block; half <<= 1)
            {
                for (int i = 0; i < block; i += half << 1)
                {
                    for (int j = i; j < i + half; j++)
                    {
                        double a = b[j], c = b[j + half];
                        b[j] = a + c;
                        b[j + half] = a - c;
                    }
                }
            }
            for (int i = 0; i < block; i++) b[i] *= norm;
        }
    }
}
