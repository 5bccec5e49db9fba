using System.Text.Json;
using Engine.Formats;
using Engine.Runtime.Models;
using StbImageSharp;

namespace Engine.Runtime.Vision;

/// <summary>
/// Turns a PNG or JPEG file into a model's pixel values [1, 3, H, W] the way Hugging Face's (PIL-based, "slow")
/// CLIPImageProcessor does: convert to RGB (alpha dropped, grey replicated, as PIL's convert("RGB"); done whatever
/// do_convert_rgb says, since the models take three channels), resize (shortest edge to <c>size.shortest_edge</c> keeping the aspect
/// ratio with the long side truncated, or to <c>size.height</c> x <c>size.width</c>) with Pillow's filter
/// (<see cref="PilResize"/>, bicubic by default), center crop to <c>crop_size</c> (zero padding when the image is
/// smaller), rescale by <c>rescale_factor</c> and normalise with <c>image_mean</c> / <c>image_std</c>, in float32 as
/// NumPy does. Settings come from preprocessor_config.json beside the model, else from the vision config's
/// <c>image_size</c> with CLIP's mean and standard deviation.
/// Qwen2VLImageProcessor (dynamic resolution, <see cref="SizeFactor"/> above 0) resizes instead to
/// <see cref="Qwen2VlPatches.SmartResize"/>'s size — sides multiples of patch_size · merge_size, area within
/// [min_pixels, max_pixels] — and does not crop; the model cuts the image into patches itself.
/// </summary>
public sealed class ImagePreprocessor
{
    public const string ConfigFileName = "preprocessor_config.json";

    private static readonly float[] ClipMean = [0.48145466f, 0.4578275f, 0.40821073f];
    private static readonly float[] ClipStd = [0.26862954f, 0.26130258f, 0.27577711f];

    /// <summary>Resize target: the shortest edge, or an exact height and width (ShortestEdge 0).</summary>
    public int ShortestEdge { get; init; }
    public int ResizeHeight { get; init; }
    public int ResizeWidth { get; init; }
    public bool DoResize { get; init; } = true;
    public PilResize.Filter Resample { get; init; } = PilResize.Filter.Bicubic;
    public bool DoCenterCrop { get; init; } = true;
    public int CropHeight { get; init; }
    public int CropWidth { get; init; }
    public bool DoRescale { get; init; } = true;
    public double RescaleFactor { get; init; } = 1 / 255.0;
    public bool DoNormalize { get; init; } = true;
    public IReadOnlyList<float> Mean { get; init; } = ClipMean;
    public IReadOnlyList<float> Std { get; init; } = ClipStd;

    /// <summary>Dynamic resolution: sides become multiples of this (patch_size · merge_size); 0 for a fixed size.</summary>
    public int SizeFactor { get; init; }
    public int MinPixels { get; init; }
    public int MaxPixels { get; init; }

    /// <summary>Qwen2VLImageProcessor's defaults: min_pixels 56·56, max_pixels 28·28·1280.</summary>
    private const int Qwen2VlMinPixels = 56 * 56, Qwen2VlMaxPixels = 28 * 28 * 1280;

    /// <summary>
    /// The preprocessing of the model at <paramref name="modelPath"/>: its folder's preprocessor_config.json (a Hugging
    /// Face folder, or the folder of a .safetensors file), else CLIP's defaults at the vision config's image_size.
    /// </summary>
    public static ImagePreprocessor ForModel(string modelPath, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(config);
        string folder = Directory.Exists(modelPath) ? modelPath : Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        string file = Path.Combine(folder, ConfigFileName);
        bool beside = Directory.Exists(modelPath) || modelPath.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);
        if (beside && File.Exists(file)) return FromJson(File.ReadAllText(file), file);

        if (config.Architecture == "qwen2_vl")
        {
            var visionConfig = ConfigSection.Of(config.Raw, "vision_config");
            return new ImagePreprocessor
            {
                DoCenterCrop = false,
                SizeFactor = visionConfig.Positive("patch_size", 14) * visionConfig.Positive("spatial_merge_size", 2),
                MinPixels = Qwen2VlMinPixels,
                MaxPixels = Qwen2VlMaxPixels,
            };
        }

        int size = config.Raw is { ValueKind: JsonValueKind.Object } raw && raw.TryGetProperty("vision_config", out var vision)
            && vision.ValueKind == JsonValueKind.Object && vision.TryGetProperty("image_size", out var s) && s.TryGetInt32(out int side) && side > 0
            ? side
            : throw new InvalidDataException($"{modelPath}: no {ConfigFileName} and no vision_config.image_size to preprocess images for");
        return new ImagePreprocessor { ShortestEdge = size, CropHeight = size, CropWidth = size };
    }

    /// <summary>Reads a preprocessor_config.json text; <paramref name="source"/> names it in errors.</summary>
    public static ImagePreprocessor FromJson(string json, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not valid JSON ({e.Message})", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{source}: must be a JSON object");
            JsonElement? Field(string name) => root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;
            bool Bool(string name, bool fallback) => Field(name) switch
            {
                null => fallback,
                { ValueKind: JsonValueKind.True } => true,
                { ValueKind: JsonValueKind.False } => false,
                { } v => throw new InvalidDataException($"{source}: '{name}' must be true or false, found {v.GetRawText()}"),
            };
            int Positive(JsonElement value, string name) =>
                value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int n) && n > 0
                    ? n
                    : throw new InvalidDataException($"{source}: '{name}' must be a positive integer, found {value.GetRawText()}");
            float[] Triple(string name, float[] fallback)
            {
                if (Field(name) is not { } v) return fallback;
                float[] values = v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number)
                    ? v.EnumerateArray().Select(e => e.GetSingle()).ToArray()
                    : v.ValueKind == JsonValueKind.Number ? [v.GetSingle(), v.GetSingle(), v.GetSingle()] : [];
                return values.Length == 3 ? values : throw new InvalidDataException($"{source}: '{name}' must be 3 numbers, found {v.GetRawText()}");
            }
            // A size is {"shortest_edge": n}, {"height": h, "width": w} or a bare n (shortest edge for size, square for crop_size).
            (int Shortest, int Height, int Width) Size(string name, bool squareWhenBare)
            {
                if (Field(name) is not { } v) throw new InvalidDataException($"{source}: missing '{name}'");
                if (v.ValueKind == JsonValueKind.Number)
                {
                    int n = Positive(v, name);
                    return squareWhenBare ? (0, n, n) : (n, 0, 0);
                }
                if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("shortest_edge", out var edge))
                    return (Positive(edge, name + ".shortest_edge"), 0, 0);
                if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("height", out var h) && v.TryGetProperty("width", out var w))
                    return (0, Positive(h, name + ".height"), Positive(w, name + ".width"));
                throw new InvalidDataException($"{source}: '{name}' must be a number, {{\"shortest_edge\": n}} or {{\"height\": h, \"width\": w}}, found {v.GetRawText()}");
            }

            bool dynamic = Field("min_pixels") is not null || Field("max_pixels") is not null
                || Field("image_processor_type") is { ValueKind: JsonValueKind.String } type && type.GetString()!.StartsWith("Qwen2VL", StringComparison.Ordinal);
            int PositiveField(string name, int fallback) => Field(name) is { } v ? Positive(v, name) : fallback;
            // Qwen2VLImageProcessor: min/max_pixels, or (newer files) size.shortest_edge / size.longest_edge holding them.
            int SizeField(string key, string legacy, int fallback) =>
                Field("size") is { ValueKind: JsonValueKind.Object } sized && sized.TryGetProperty(key, out var v) ? Positive(v, "size." + key)
                    : PositiveField(legacy, fallback);
            bool doResize = Bool("do_resize", true), doCrop = !dynamic && Bool("do_center_crop", true);
            var size = doResize && !dynamic ? Size("size", squareWhenBare: false) : default;
            var crop = doCrop ? Size("crop_size", squareWhenBare: true) : default;
            if (doCrop && crop.Shortest > 0) throw new InvalidDataException($"{source}: 'crop_size' needs a height and a width");
            int resample = Field("resample") is { } r
                ? (r.ValueKind == JsonValueKind.Number && r.TryGetInt32(out int code) ? code : -1)
                : (int)PilResize.Filter.Bicubic;
            if (doResize && !Enum.IsDefined((PilResize.Filter)resample))
                throw new NotSupportedException($"{source}: resample {Field("resample")?.GetRawText()} is not supported (supported: 2 bilinear, 3 bicubic)");
            double rescale = Field("rescale_factor") is { } f
                ? f.ValueKind == JsonValueKind.Number && f.GetDouble() is var d && double.IsFinite(d) ? d
                    : throw new InvalidDataException($"{source}: 'rescale_factor' must be a number, found {f.GetRawText()}")
                : 1 / 255.0;
            var std = Triple("image_std", ClipStd);
            if (std.Any(v => v == 0)) throw new InvalidDataException($"{source}: 'image_std' must not hold 0");
            return new ImagePreprocessor
            {
                DoResize = doResize,
                ShortestEdge = size.Shortest,
                ResizeHeight = size.Height,
                ResizeWidth = size.Width,
                Resample = (PilResize.Filter)resample,
                DoCenterCrop = doCrop,
                CropHeight = crop.Height,
                CropWidth = crop.Width,
                DoRescale = Bool("do_rescale", true),
                RescaleFactor = rescale,
                DoNormalize = Bool("do_normalize", true),
                Mean = Triple("image_mean", ClipMean),
                Std = std,
                SizeFactor = dynamic ? PositiveField("patch_size", 14) * PositiveField("merge_size", 2) : 0,
                MinPixels = dynamic ? SizeField("shortest_edge", "min_pixels", Qwen2VlMinPixels) : 0,
                MaxPixels = dynamic ? SizeField("longest_edge", "max_pixels", Qwen2VlMaxPixels) : 0,
            };
        }
    }

    /// <summary>Reads and preprocesses an image file: pixel values [1, 3, H, W], row-major, and that shape.</summary>
    public (float[] PixelValues, int[] Shape) Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"image file not found: {path}", path);
        ImageResult image;
        try
        {
            image = ImageResult.FromMemory(File.ReadAllBytes(path), ColorComponents.RedGreenBlue);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{path}: not a readable PNG or JPEG image ({e.Message})", e);
        }
        if (image is null || image.Width <= 0 || image.Height <= 0 || image.Data is null || image.Data.Length < image.Width * image.Height * 3)
            throw new InvalidDataException($"{path}: not a readable PNG or JPEG image");
        return Process(image.Data, image.Width, image.Height);
    }

    /// <summary>Preprocesses interleaved 8-bit RGB pixels [height][width][3].</summary>
    public (float[] PixelValues, int[] Shape) Process(byte[] rgb, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        if (width <= 0 || height <= 0 || rgb.Length != width * height * 3)
            throw new ArgumentException($"{rgb.Length} bytes are not a {width}x{height} RGB image");
        if (DoResize)
        {
            var (newHeight, newWidth) = ResizedSize(height, width);
            rgb = PilResize.Resize(rgb, width, height, 3, newWidth, newHeight, Resample);
            (width, height) = (newWidth, newHeight);
        }
        // Center crop as transformers does: offsets floor((size - crop) / 2), zeros where the crop leaves the image.
        int outHeight = DoCenterCrop ? CropHeight : height, outWidth = DoCenterCrop ? CropWidth : width;
        int top = (int)Math.Floor((height - outHeight) / 2.0), left = (int)Math.Floor((width - outWidth) / 2.0);
        var values = new float[3 * outHeight * outWidth];
        for (int c = 0; c < 3; c++)
        {
            float mean = DoNormalize ? Mean[c] : 0f, std = DoNormalize ? Std[c] : 1f;
            for (int y = 0; y < outHeight; y++)
                for (int x = 0; x < outWidth; x++)
                {
                    int sy = y + top, sx = x + left;
                    float v = sy >= 0 && sy < height && sx >= 0 && sx < width ? rgb[(sy * width + sx) * 3 + c] : 0;
                    // NumPy: the rescale in float64 then cast to float32; the normalisation in float32.
                    if (DoRescale) v = (float)(v * RescaleFactor);
                    values[(c * outHeight + y) * outWidth + x] = DoNormalize ? (v - mean) / std : v;
                }
        }
        return (values, [1, 3, outHeight, outWidth]);
    }

    /// <summary>transformers' get_resize_output_image_size: the short side to the target, the long side scaled and truncated.</summary>
    private (int Height, int Width) ResizedSize(int height, int width)
    {
        if (SizeFactor > 0) return Qwen2VlPatches.SmartResize(height, width, SizeFactor, MinPixels, MaxPixels);
        if (ShortestEdge <= 0) return (ResizeHeight, ResizeWidth);
        int shortSide = Math.Min(height, width), longSide = Math.Max(height, width);
        int newLong = (int)((long)ShortestEdge * longSide / shortSide);
        return height <= width ? (ShortestEdge, newLong) : (newLong, ShortestEdge);
    }
}
