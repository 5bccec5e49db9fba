using System.CommandLine;
using System.Text.Json;
using Engine.Runtime;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine logits</c>: the logits of every prompt position, and optionally N greedy tokens through the cache with
/// end-of-sequence ids masked, as JSON (the contract in DESIGN.md that outside tests use). For a vision model the
/// input may carry normalised <c>pixel_values</c> with their <c>pixel_values_shape</c>; the prompt then holds the
/// model's image tokens, one per image feature. Qwen2-VL also takes its processor's output as is: flattened patches in
/// <c>pixel_values</c> with <c>image_grid_thw</c> ([images][3]).
/// </summary>
public static class LogitsCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var input = new Option<FileInfo>("--input", "-i") { Description = "JSON file with \"input_ids\": [ints] (and \"pixel_values\", \"pixel_values_shape\" for vision models)", Required = true };
        var output = new Option<FileInfo>("--output", "-o") { Description = "JSON file to write \"logits\" ([n][vocab]) and \"greedy_new_tokens\"", Required = true };
        var greedy = new Option<int>("--greedy") { Description = "Also generate N greedy tokens (end-of-sequence ids masked)", DefaultValueFactory = _ => 0 };
        var backend = CommonOptions.Backend();
        var device = CommonOptions.Device();
        var sefpBits = CommonOptions.SefpBits();
        var context = CommonOptions.Context();
        var cacheType = CommonOptions.CacheType();
        var command = new Command("logits", "Write the logits of every prompt position (and greedy tokens) as JSON")
        {
            model, input, output, greedy, backend, device, context, sefpBits, cacheType,
        };
        command.SetAction(parse =>
        {
            int greedyCount = parse.GetValue(greedy);
            if (greedyCount < 0) throw new ArgumentException($"--greedy must be 0 or more, got {greedyCount}");
            var (ids, pixels, shape, grid) = ReadInput(parse.GetValue(input)!.FullName);
            using var loaded = ModelLoader.Load(parse.GetValue(model)!, new ModelOptions
            {
                Backend = parse.GetValue(backend),
                DeviceIndex = parse.GetValue(device),
                MaxContext = parse.GetValue(context),
                SefpBits = parse.GetValue(sefpBits),
                CacheType = parse.GetValue(cacheType),
            });
            int vocab = loaded.Config.VocabSize;
            if (ids.Length + greedyCount > loaded.MaxContext)
                throw new ArgumentException($"{ids.Length} input ids + {greedyCount} greedy tokens exceed the context length {loaded.MaxContext} (raise --ctx-size)");
            foreach (int id in ids)
            {
                if ((uint)id >= (uint)vocab) throw new ArgumentException($"input id {id} is outside the vocabulary (0..{vocab - 1})");
            }
            var state = loaded.CreateState();
            if (pixels is not null && grid is not null) AttachPatches(loaded, state, ids, pixels, grid);
            else if (pixels is not null) AttachImages(loaded, state, ids, pixels, shape!);
            var logits = new float[ids.Length * vocab];
            loaded.Forward(state, ids, logits, allPositions: true);
            int[] generated = greedyCount == 0
                ? []
                : GreedyDecoder.Continue(loaded, state, logits.AsSpan((ids.Length - 1) * vocab), greedyCount, loaded.Config.EosTokenIds.ToHashSet());
            WriteOutput(parse.GetValue(output)!.FullName, logits, vocab, greedyCount > 0 ? generated : null);
            return 0;
        });
        return command;
    }

    /// <summary>Checks that the prompt's image tokens are exactly the images' features, and attaches the images.</summary>
    private static void AttachImages(ILanguageModel model, IModelState state, int[] ids, float[] pixels, int[] shape)
    {
        var vision = model as IMultimodalModel
            ?? throw new ArgumentException($"pixel_values given, but the model ({model.Config.Architecture}) reads no images");
        int images = shape.Length == 4 ? shape[0] : 1;
        int perImage = vision.ImageTokens(shape.AsSpan(shape.Length - 3));
        int tokens = ids.Count(id => id == vision.ImageTokenId);
        if (tokens != (long)images * perImage)
            throw new ArgumentException(
                $"input_ids hold {tokens} image tokens (id {vision.ImageTokenId}); {images} image(s) need {(long)images * perImage} ({perImage} each)");
        vision.AddImages(state, pixels, shape);
    }

    /// <summary>Qwen2-VL's processor output: checks the prompt's image tokens against image_grid_thw and attaches the images.</summary>
    private static void AttachPatches(ILanguageModel model, IModelState state, int[] ids, float[] pixels, int[] grid)
    {
        var qwen = model as Engine.Runtime.Models.Qwen2VlModel
            ?? throw new ArgumentException($"image_grid_thw given, but the model ({model.Config.Architecture}) is not Qwen2-VL");
        int tokens = ids.Count(id => id == qwen.ImageTokenId), needed = qwen.GridTokens(grid);
        if (tokens != needed)
            throw new ArgumentException($"input_ids hold {tokens} image tokens (id {qwen.ImageTokenId}); image_grid_thw [{string.Join(", ", grid)}] needs {needed}");
        qwen.AddPatches(state, pixels, grid);
    }

    private static (int[] Ids, float[]? Pixels, int[]? Shape, int[]? Grid) ReadInput(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"input file not found: {path}");
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("input_ids", out var idsElement)
                || idsElement.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{path}: expected an object with an \"input_ids\" array");
            var root = document.RootElement;
            float[]? pixels = null;
            int[]? shape = null, grid = null;
            if (root.TryGetProperty("pixel_values", out var pixelElement))
            {
                if (pixelElement.ValueKind != JsonValueKind.Array)
                    throw new InvalidDataException($"{path}: pixel_values must be an array of numbers (flattened row-major)");
                pixels = pixelElement.EnumerateArray()
                    .Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetSingle(out float v) && float.IsFinite(v) ? v
                        : throw new InvalidDataException($"{path}: pixel_values must hold finite numbers, found {e.GetRawText()}"))
                    .ToArray();
                if (root.TryGetProperty("image_grid_thw", out var gridElement))
                {
                    // Nested [[t, h, w], ...] or flat; the patches' own shape follows from it.
                    grid = (gridElement.ValueKind == JsonValueKind.Array ? gridElement.EnumerateArray() : throw new InvalidDataException($"{path}: image_grid_thw must be [images][3]"))
                        .SelectMany(e => e.ValueKind == JsonValueKind.Array ? e.EnumerateArray() : new[] { e }.AsEnumerable())
                        .Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) && v > 0 ? v
                            : throw new InvalidDataException($"{path}: image_grid_thw must hold positive integers, found {e.GetRawText()}"))
                        .ToArray();
                    if (grid.Length == 0 || grid.Length % 3 != 0) throw new InvalidDataException($"{path}: image_grid_thw must be [images][3]");
                }
                else
                {
                    if (!root.TryGetProperty("pixel_values_shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
                        throw new InvalidDataException($"{path}: pixel_values needs pixel_values_shape ([images, channels, height, width])");
                    shape = shapeElement.EnumerateArray()
                        .Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) && v > 0 ? v
                            : throw new InvalidDataException($"{path}: pixel_values_shape must hold positive integers, found {e.GetRawText()}"))
                        .ToArray();
                    long count = shape.Aggregate(1L, (a, b) => a * b);
                    if (shape.Length is not (3 or 4) || count != pixels.Length)
                        throw new InvalidDataException($"{path}: pixel_values_shape [{string.Join(", ", shape)}] does not describe {pixels.Length} pixel values");
                }
            }
            var ids = idsElement.EnumerateArray()
                .Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) ? v
                    : throw new InvalidDataException($"{path}: input_ids must hold integers, found {e.GetRawText()}"))
                .ToArray();
            return ids.Length > 0 ? (ids, pixels, shape, grid) : throw new InvalidDataException($"{path}: input_ids is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})");
        }
    }

    private static void WriteOutput(string path, float[] logits, int vocab, int[]? greedy)
    {
        using var stream = File.Create(path);
        using var writer = new Utf8JsonWriter(stream);
        writer.WriteStartObject();
        writer.WriteStartArray("logits");
        for (int row = 0; row < logits.Length / vocab; row++)
        {
            writer.WriteStartArray();
            foreach (float value in logits.AsSpan(row * vocab, vocab)) writer.WriteNumberValue(value);
            writer.WriteEndArray();
        }
        writer.WriteEndArray();
        if (greedy is not null)
        {
            writer.WriteStartArray("greedy_new_tokens");
            foreach (int token in greedy) writer.WriteNumberValue(token);
            writer.WriteEndArray();
        }
        writer.WriteEndObject();
    }
}
