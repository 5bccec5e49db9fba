namespace Engine.Runtime.Models;

/// <summary>Qwen2VLImageProcessor's geometry: the image size it resizes to and the order it flattens patches in.</summary>
public static class Qwen2VlPatches
{
    /// <summary>
    /// smart_resize: the height and width nearest to the image's (each rounded to a multiple of
    /// <paramref name="factor"/>) whose area lies in [minPixels, maxPixels], keeping the aspect ratio as nearly as the
    /// rounding allows.
    /// </summary>
    public static (int Height, int Width) SmartResize(int height, int width, int factor, int minPixels, int maxPixels)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"image size {width}x{height} is not positive");
        if (Math.Max(height, width) / (double)Math.Min(height, width) > 200)
            throw new ArgumentException($"image size {width}x{height}: the aspect ratio must be below 200");
        // Python's round() rounds halves to even, as Math.Round does by default.
        int h = Math.Max(factor, (int)Math.Round((double)height / factor) * factor);
        int w = Math.Max(factor, (int)Math.Round((double)width / factor) * factor);
        if ((long)h * w > maxPixels)
        {
            double beta = Math.Sqrt((double)height * width / maxPixels);
            h = Math.Max(factor, (int)Math.Floor(height / beta / factor) * factor);
            w = Math.Max(factor, (int)Math.Floor(width / beta / factor) * factor);
        }
        else if ((long)h * w < minPixels)
        {
            double beta = Math.Sqrt((double)minPixels / ((double)height * width));
            h = (int)Math.Ceiling(height * beta / factor) * factor;
            w = (int)Math.Ceiling(width * beta / factor) * factor;
        }
        return (h, w);
    }

    /// <summary>
    /// The processor's pixel_values of one image [channels][height][width]: [gh·gw][channels·temporal·p·p], the frame
    /// repeated over the temporal patch, patches ordered by merge window (row by row) and inside each window row by row
    /// — the order the vision tower's merger and 2-D positions expect.
    /// </summary>
    public static float[] Flatten(ReadOnlySpan<float> image, int channels, int height, int width, int patchSize, int temporalPatchSize, int mergeSize)
    {
        int p = patchSize, m = mergeSize;
        if (height % (p * m) != 0 || width % (p * m) != 0)
            throw new ArgumentException($"image size {width}x{height} is not a multiple of {p * m}");
        if (image.Length != channels * height * width)
            throw new ArgumentException($"{image.Length} values given, a {channels}x{height}x{width} image needs {channels * height * width}");
        int gh = height / p, gw = width / p;
        var rows = new float[gh * gw * channels * temporalPatchSize * p * p];
        int i = 0;
        for (int wy = 0; wy < gh / m; wy++)
            for (int wx = 0; wx < gw / m; wx++)
                for (int iy = 0; iy < m; iy++)
                    for (int ix = 0; ix < m; ix++)
                        for (int c = 0; c < channels; c++)
                            for (int frame = 0; frame < temporalPatchSize; frame++)
                                for (int ky = 0; ky < p; ky++)
                                {
                                    int y = (wy * m + iy) * p + ky, x = (wx * m + ix) * p;
                                    image.Slice((c * height + y) * width + x, p).CopyTo(rows.AsSpan(i, p));
                                    i += p;
                                }
        return rows;
    }
}
