namespace Engine.Runtime.Vision;

/// <summary>
/// Pillow's <c>Image.resize</c> for 8-bit images (libImaging/Resample.c), reproduced exactly so preprocessing matches
/// Hugging Face's PIL-based image processors to the byte: a separable convolution, horizontal pass first, then
/// vertical, each output pixel a weighted sum over a window whose support grows with the downscale factor
/// (antialiasing); weights normalised to sum 1, turned into 22-bit fixed point, and each pass rounded and clamped to
/// 0..255. Filters: bicubic (Keys cubic, a = -0.5, support 2) and bilinear (triangle, support 1).
/// </summary>
public static class PilResize
{
    /// <summary>Pillow's resample codes as preprocessor_config.json's "resample" gives them.</summary>
    public enum Filter
    {
        Bilinear = 2,
        Bicubic = 3,
    }

    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Resizes interleaved 8-bit pixels [height][width][channels].</summary>
    public static byte[] Resize(byte[] pixels, int width, int height, int channels, int newWidth, int newHeight, Filter filter)
    {
        if (newWidth <= 0 || newHeight <= 0) throw new ArgumentException($"cannot resize to {newWidth}x{newHeight}");
        var horizontal = newWidth == width ? pixels : Pass(pixels, width, height, channels, newWidth, filter, horizontal: true);
        return newHeight == height ? horizontal : Pass(horizontal, newWidth, height, channels, newHeight, filter, horizontal: false);
    }

    /// <summary>One direction: along rows (horizontal) or columns, from <paramref name="width"/>x<paramref name="height"/>.</summary>
    private static byte[] Pass(byte[] input, int width, int height, int channels, int newSize, Filter filter, bool horizontal)
    {
        int inSize = horizontal ? width : height;
        var (first, weights, windowSize) = Coefficients(inSize, newSize, filter);
        int outWidth = horizontal ? newSize : width, outHeight = horizontal ? height : newSize;
        var output = new byte[outWidth * outHeight * channels];
        for (int y = 0; y < outHeight; y++)
            for (int x = 0; x < outWidth; x++)
            {
                int o = horizontal ? x : y;
                var window = weights.AsSpan(o * windowSize, windowSize);
                for (int c = 0; c < channels; c++)
                {
                    long sum = 1L << (PrecisionBits - 1);
                    for (int i = 0; i < window.Length; i++)
                    {
                        int source = first[o] + i;
                        if (source >= inSize) break;
                        int index = horizontal ? (y * width + source) * channels + c : (source * width + x) * channels + c;
                        sum += input[index] * (long)window[i];
                    }
                    output[(y * outWidth + x) * channels + c] = (byte)Math.Clamp(sum >> PrecisionBits, 0, 255);
                }
            }
        return output;
    }

    /// <summary>For each output pixel: its first input pixel and fixed-point weights (precompute_coeffs and normalize_coeffs_8bpc).</summary>
    private static (int[] First, int[] Weights, int WindowSize) Coefficients(int inSize, int outSize, Filter filter)
    {
        double support = filter == Filter.Bicubic ? 2.0 : 1.0;
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        support *= filterScale;
        int windowSize = (int)Math.Ceiling(support) * 2 + 1;
        var first = new int[outSize];
        var weights = new int[outSize * windowSize];
        var k = new double[windowSize];
        double inverseScale = 1.0 / filterScale;
        for (int o = 0; o < outSize; o++)
        {
            double center = (o + 0.5) * scale;
            // C casts truncate toward zero; Pillow relies on that before clamping at 0.
            int min = Math.Max((int)(center - support + 0.5), 0);
            int count = Math.Min((int)(center + support + 0.5), inSize) - min;
            double total = 0;
            for (int i = 0; i < count; i++)
            {
                k[i] = Kernel((i + min - center + 0.5) * inverseScale, filter);
                total += k[i];
            }
            for (int i = 0; i < count; i++)
            {
                double w = total == 0 ? k[i] : k[i] / total;
                weights[o * windowSize + i] = (int)(w < 0 ? -0.5 + w * (1 << PrecisionBits) : 0.5 + w * (1 << PrecisionBits));
            }
            first[o] = min;
        }
        return (first, weights, windowSize);
    }

    private static double Kernel(double x, Filter filter)
    {
        x = Math.Abs(x);
        if (filter == Filter.Bilinear) return x < 1 ? 1 - x : 0;
        const double a = -0.5;
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }
}
