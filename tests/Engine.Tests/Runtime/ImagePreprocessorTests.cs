using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using Engine.Formats;
using Engine.Runtime.Vision;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>Image files to pixel values, against numbers worked out by hand for tiny images.</summary>
public sealed class ImagePreprocessorTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Png(string name, int width, int height, int channels, Func<int, int, int, int> pixel)
    {
        var data = new byte[width * height * channels];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < channels; c++) data[(y * width + x) * channels + c] = (byte)pixel(y, x, c);
        return _temp.Write(name, TestPng.Encode(width, height, channels, data));
    }

    private ImagePreprocessor FromJson(string json) => ImagePreprocessor.FromJson(json, "test preprocessor_config.json");

    [Fact]
    public void Crop_rescale_and_normalise_match_hand_computed_values()
    {
        // 4 wide, 2 high; R = 30·(4y + x), G = R + 10, B = R + 20. Shortest edge 2 keeps the size; the 2x2 center crop
        // starts at column (4 - 2) / 2 = 1; then (v / 255 - mean) / std.
        string path = Png("grid.png", 4, 2, 3, (y, x, c) => 30 * (4 * y + x) + 10 * c);
        var pre = FromJson("""
            {"do_resize": true, "size": {"shortest_edge": 2}, "do_center_crop": true, "crop_size": {"height": 2, "width": 2},
             "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true,
             "image_mean": [0.5, 0.25, 0.0], "image_std": [0.5, 0.25, 1.0], "resample": 3}
            """);
        var (values, shape) = pre.Load(path);
        Assert.Equal([1, 3, 2, 2], shape);
        float[] expected =
        [
            -0.764706f, -0.529412f, 0.176471f, 0.411765f,   // R 30, 60, 150, 180: (v/255 - 0.5) / 0.5
            -0.372549f, 0.098039f, 1.509804f, 1.980392f,    // G 40, 70, 160, 190: (v/255 - 0.25) / 0.25
            0.196078f, 0.313725f, 0.666667f, 0.784314f,     // B 50, 80, 170, 200: v/255
        ];
        Assert.Equal(expected, values, (a, b) => Math.Abs(a - b) < 2e-6);
    }

    [Fact]
    public void Bicubic_downscale_matches_pillow_worked_by_hand()
    {
        // 4x2 to 2x1 (shortest edge 1). Horizontal, scale 2: the cubic (a = -0.5) widens to support 4; output column 0
        // has center 1 and taps x = 0..3 at distances (x + 0.5 - 1) / 2 = -0.25, 0.25, 0.75, 1.25, weights
        // 0.8671875, 0.8671875, 0.2265625, -0.0703125 (sum 1.890625); column 1 mirrors them.
        // R rows [0, 100, 200, 250]: (100·0.8671875 + 200·0.2265625 - 250·0.0703125) / 1.890625 = 60.54 -> 61, and
        // (100·0.2265625 + 200·0.8671875 + 250·0.8671875) / 1.890625 = 218.39 -> 218. G is 128 everywhere.
        // Vertically both rows weigh 0.8671875: B rows 10 and 200 give 105.
        string path = Png("down.png", 4, 2, 3, (y, x, c) => c switch { 0 => new[] { 0, 100, 200, 250 }[x], 1 => 128, _ => y == 0 ? 10 : 200 });
        var pre = FromJson("""
            {"size": {"shortest_edge": 1}, "crop_size": {"height": 1, "width": 2}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
            """);
        var (values, shape) = pre.Load(path);
        Assert.Equal([1, 3, 1, 2], shape);
        float[] bytes = values.Select(v => (v * 0.5f + 0.5f) * 255f).ToArray();
        Assert.Equal([61f, 218f, 128f, 128f, 105f, 105f], bytes, (a, b) => Math.Abs(a - b) < 1e-3);
    }

    [Fact]
    public void Without_a_preprocessor_config_the_vision_config_image_size_and_clip_statistics_apply()
    {
        // An RGBA image of one colour: the alpha is dropped, resize and crop keep the colour, and each channel becomes
        // (v/255 - CLIP mean) / CLIP std: (255/255 - 0.48145466) / 0.26862954 = 1.930336, (0 - 0.4578275) / 0.26130258
        // = -1.752097, (128/255 - 0.40821073) / 0.27577711 = 0.339949.
        string path = Png("solid.png", 4, 2, 4, (_, _, c) => new[] { 255, 0, 128, 7 }[c]);
        string folder = TestPaths.Shared("fixtures", "hf-tiny", "llava");
        var pre = ImagePreprocessor.ForModel(folder, HfConfigReader.Read(folder));
        var (values, shape) = pre.Load(path);
        Assert.Equal([1, 3, 32, 32], shape);
        float[] expected = [1.930336f, -1.752097f, 0.339949f];
        for (int i = 0; i < values.Length; i++) Assert.Equal(expected[i / (32 * 32)], values[i], 1e-5f);
    }

    [Fact]
    public void A_grey_image_fills_all_three_channels_and_a_preprocessor_config_beside_the_model_is_read()
    {
        string folder = Directory.CreateDirectory(_temp.File("model")).FullName;
        File.WriteAllText(Path.Combine(folder, "preprocessor_config.json"), """
            {"size": {"height": 2, "width": 3}, "do_center_crop": false, "do_normalize": false}
            """);
        string path = Png("grey.png", 3, 2, 1, (y, x, _) => 50 * (3 * y + x));
        var pre = ImagePreprocessor.ForModel(folder, HfConfigReader.Read(TestPaths.Shared("fixtures", "hf-tiny", "llava")));
        var (values, shape) = pre.Load(path);
        Assert.Equal([1, 3, 2, 3], shape);
        float[] grey = [0, 50 / 255f, 100 / 255f, 150 / 255f, 200 / 255f, 250 / 255f];
        Assert.Equal([.. grey, .. grey, .. grey], values, (a, b) => Math.Abs(a - b) < 1e-6);
    }

    [Fact]
    public void Missing_and_corrupt_images_and_bad_settings_are_clear_errors()
    {
        var pre = FromJson("""{"size": 4, "crop_size": 4}""");
        string missing = _temp.File("nowhere.png");
        Assert.Contains("image file not found", Assert.Throws<FileNotFoundException>(() => pre.Load(missing)).Message);
        string noise = _temp.Write("noise.png", Enumerable.Range(0, 64).Select(i => (byte)(i * 37)).ToArray());
        Assert.Contains("not a readable PNG or JPEG", Assert.Throws<InvalidDataException>(() => pre.Load(noise)).Message);
        byte[] good = File.ReadAllBytes(Png("good.png", 4, 4, 3, (y, x, c) => y + x + c));
        string truncated = _temp.Write("truncated.png", good[..(good.Length / 2)]);
        Assert.Contains("not a readable PNG or JPEG", Assert.Throws<InvalidDataException>(() => pre.Load(truncated)).Message);

        Assert.Contains("not valid JSON", Assert.Throws<InvalidDataException>(() => FromJson("{")).Message);
        Assert.Contains("image_std", Assert.Throws<InvalidDataException>(() => FromJson("""{"size": 4, "crop_size": 4, "image_std": [1, 0, 1]}""")).Message);
        Assert.Contains("resample", Assert.Throws<NotSupportedException>(() => FromJson("""{"size": 4, "crop_size": 4, "resample": 1}""")).Message);
        Assert.Contains("resample", Assert.Throws<NotSupportedException>(() => FromJson("""{"size": 4, "crop_size": 4, "resample": "bicubic"}""")).Message);
        Assert.Contains("'size'", Assert.Throws<InvalidDataException>(() => FromJson("""{"size": {"longest_edge": 4}, "crop_size": 4}""")).Message);
    }
}

/// <summary>A minimal PNG encoder (8-bit grey, RGB or RGBA; stored without filtering) for test images.</summary>
internal static class TestPng
{
    public static byte[] Encode(int width, int height, int channels, byte[] pixels)
    {
        using var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0);
            raw.Write(pixels, y * width * channels, width * channels);
        }
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true)) raw.WriteTo(zlib);

        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8;
        header[9] = channels switch { 1 => 0, 3 => 2, 4 => 6, _ => throw new ArgumentException("1, 3 or 4 channels") };
        Chunk(png, "IHDR", header);
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        var length = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        png.Write(length);
        byte[] typeAndData = [.. type.Select(c => (byte)c), .. data];
        png.Write(typeAndData);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.HashToUInt32(typeAndData));
        png.Write(crc);
    }
}
