using System.CommandLine;
using System.Text.Json;
using Engine.Runtime;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine logits</c>: the logits of every prompt position, and optionally N greedy tokens through the cache with
/// end-of-sequence ids masked, as JSON (the contract in DESIGN.md that outside tests use).
/// </summary>
public static class LogitsCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var input = new Option<FileInfo>("--input", "-i") { Description = "JSON file with \"input_ids\": [ints]", Required = true };
        var output = new Option<FileInfo>("--output", "-o") { Description = "JSON file to write \"logits\" ([n][vocab]) and \"greedy_new_tokens\"", Required = true };
        var greedy = new Option<int>("--greedy") { Description = "Also generate N greedy tokens (end-of-sequence ids masked)", DefaultValueFactory = _ => 0 };
        var backend = CommonOptions.Backend();
        var device = CommonOptions.Device();
        var sefpBits = CommonOptions.SefpBits();
        var context = CommonOptions.Context();
        var command = new Command("logits", "Write the logits of every prompt position (and greedy tokens) as JSON")
        {
            model, input, output, greedy, backend, device, context, sefpBits,
        };
        command.SetAction(parse =>
        {
            int greedyCount = parse.GetValue(greedy);
            if (greedyCount < 0) throw new ArgumentException($"--greedy must be 0 or more, got {greedyCount}");
            int[] ids = ReadInputIds(parse.GetValue(input)!.FullName);
            using var loaded = ModelLoader.Load(parse.GetValue(model)!, new ModelOptions
            {
                Backend = parse.GetValue(backend),
                DeviceIndex = parse.GetValue(device),
                MaxContext = parse.GetValue(context),
                SefpBits = parse.GetValue(sefpBits),
            });
            int vocab = loaded.Config.VocabSize;
            if (ids.Length + greedyCount > loaded.MaxContext)
                throw new ArgumentException($"{ids.Length} input ids + {greedyCount} greedy tokens exceed the context length {loaded.MaxContext} (raise --ctx-size)");
            foreach (int id in ids)
            {
                if ((uint)id >= (uint)vocab) throw new ArgumentException($"input id {id} is outside the vocabulary (0..{vocab - 1})");
            }
            var state = loaded.CreateState();
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

    private static int[] ReadInputIds(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"input file not found: {path}");
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("input_ids", out var idsElement)
                || idsElement.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{path}: expected an object with an \"input_ids\" array");
            if (document.RootElement.TryGetProperty("pixel_values", out _))
                throw new NotSupportedException($"{path}: pixel_values given, but no vision model is supported yet");
            var ids = idsElement.EnumerateArray()
                .Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) ? v
                    : throw new InvalidDataException($"{path}: input_ids must hold integers, found {e.GetRawText()}"))
                .ToArray();
            return ids.Length > 0 ? ids : throw new InvalidDataException($"{path}: input_ids is empty");
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
