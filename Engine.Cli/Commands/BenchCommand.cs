using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Engine.Formats;
using Engine.Runtime;
using Engine.Runtime.Benchmarks;
using Engine.Quantizers;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine bench</c>: llama-bench's prompt-processing and generation tests (pp, greedy tg, and tg sampled as
/// <c>engine generate</c> samples) on a model or on each architecture at a 1B-class shape with random weights, or
/// mat-vec bandwidth per weight format at given shapes (random weights), as a markdown table, JSON or CSV. Model rows
/// say the KV cache's element type (--cache-type; empty for models without one), and generation rows on the Vulkan
/// backend the compute dispatches of one decode step (empty, or null in JSON, elsewhere).
/// </summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model(required: false);
        var prompt = new Option<int>("--n-prompt", "-p") { Description = "Prompt tokens for the pp test (0 skips it)", DefaultValueFactory = _ => 512 };
        var generate = new Option<int>("--n-gen", "-n") { Description = "Generated tokens for the tg tests (greedy, and sampled with --sampled; 0 skips them)", DefaultValueFactory = _ => 128 };
        var sampled = new Option<bool>("--sampled")
        {
            Description = "Also time sampled generation (tgN sampled: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, logits read and sampled on the host as generate does)",
        };
        var repetitions = new Option<int>("--repetitions", "-r") { Description = "Repetitions of each test", DefaultValueFactory = _ => 5 };
        var matvec = new Option<string?>("--matvec")
        {
            Description = "Instead of a model, time mat-vec on random weights at these shapes, e.g. 4096x4096,8192x8192",
        };
        var architectures = new Option<string?>("--arch")
        {
            Description = $"Instead of a model, time these architectures at a 1B-class shape with random weights, comma-separated, or 'all' ({string.Join(", ", BenchmarkModels.Names)})",
        };
        var types = new Option<string?>("--types")
        {
            Description = "Weight formats, comma-separated, or 'all', each with its default parameters: of the mat-vecs for --matvec (default all), of the matrices for --arch (default q4)",
        };
        var iterations = new Option<int>("--iterations") { Description = "Mat-vecs per repetition for --matvec", DefaultValueFactory = _ => 50 };
        var output = new Option<string>("--output", "-o")
        {
            Description = "md, json or csv",
            DefaultValueFactory = _ => "md",
        };
        output.AcceptOnlyFromAmong("md", "json", "csv");
        var backend = CommonOptions.Backend();
        var device = CommonOptions.Device();
        var sefpBits = CommonOptions.SefpBits();
        var cacheType = CommonOptions.CacheType();
        var command = new Command("bench", "Measure prompt and generation tokens/s of a model, or mat-vec GB/s per weight format")
        {
            model, prompt, generate, sampled, repetitions, matvec, architectures, types, iterations, output, backend, device, sefpBits, cacheType,
        };
        command.SetAction(parse =>
        {
            int reps = parse.GetValue(repetitions);
            bool withSampled = parse.GetValue(sampled);
            if (reps < 1) throw new ArgumentException("--repetitions must be at least 1");
            var options = new ModelOptions
            {
                Backend = parse.GetValue(backend), DeviceIndex = parse.GetValue(device), SefpBits = parse.GetValue(sefpBits), CacheType = parse.GetValue(cacheType),
            };
            string? shapes = parse.GetValue(matvec);
            string? modelPath = parse.GetValue(model);
            string? archNames = parse.GetValue(architectures);
            if (new[] { shapes, modelPath, archNames }.Count(v => v is not null) != 1)
                throw new ArgumentException("give one of --model PATH, --matvec SHAPES or --arch NAMES");

            var report = new BenchReport(parse.GetValue(output)!, shapes is not null, options.Backend.ToString().ToLowerInvariant());
            int p = parse.GetValue(prompt), n = parse.GetValue(generate);
            var modelOptions = options with { MaxContext = Math.Max(p + n, 16) };
            if (shapes is not null)
            {
                using var be = ModelLoader.CreateBackend(options);
                int iters = parse.GetValue(iterations);
                if (iters < 1) throw new ArgumentException("--iterations must be at least 1");
                var formats = ParseTypes(parse.GetValue(types) ?? "all");
                report.Add("random", be.DeviceName, MatVecBenchmark.Copy(be, iters, reps));
                foreach (var shape in ParseShapes(shapes))
                    foreach (var type in formats)
                        report.Add("random", be.DeviceName, RunMatVec(be, shape.Rows, shape.Columns, type, iters, reps));
            }
            else if (archNames is not null)
            {
                var names = archNames.Trim() == "all" ? BenchmarkModels.Names.ToList()
                    : archNames.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
                var formats = ParseTypes(parse.GetValue(types) ?? "q4");
                var configs = names.Select(name => (name, HfConfigReader.FromJson(BenchmarkModels.Config(name), null, $"benchmark shape '{name}'"))).ToList();
                foreach (var (name, config) in configs)
                {
                    foreach (var type in formats)
                    {
                        Console.Error.WriteLine($"{name}: making random {WeightTypes.Get(type).Name} weights at its 1B-class shape…");
                        using var weights = new SyntheticTensors(type);
                        using var loaded = ModelLoader.Load(config, weights, modelOptions);
                        foreach (var row in ModelBenchmark.Run(loaded, p, n, reps, sampled: withSampled))
                            report.Add($"{name} 1B (random)", loaded.Backend.DeviceName, row);
                    }
                }
            }
            else
            {
                using var loaded = ModelLoader.Load(modelPath!, modelOptions);
                string subject = Path.GetFileName(Path.TrimEndingDirectorySeparator(modelPath!));
                foreach (var row in ModelBenchmark.Run(loaded, p, n, reps, sampled: withSampled))
                    report.Add(subject, loaded.Backend.DeviceName, row);
            }
            report.Finish();
            return 0;
        });
        return command;
    }

    /// <summary>Mat-vec on random weights in <paramref name="type"/> with its default parameters, encoded by the format's default method.</summary>
    private static Measurement RunMatVec(IBackend backend, int rows, int columns, WeightType type, int iterations, int repetitions)
    {
        var random = new Random(42);
        var values = new float[(long)rows * columns];
        for (long i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        var encoded = WeightEncoders.Encode(type, "bench", values, rows, columns);
        using var shared = new InMemoryTensors(encoded.Companions);
        return MatVecBenchmark.Run(backend, encoded.Info, encoded.Data, shared, iterations, repetitions);
    }

    private static IEnumerable<(int Rows, int Columns)> ParseShapes(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s =>
        {
            var parts = s.Split('x');
            return parts.Length == 2 && int.TryParse(parts[0], out int r) && int.TryParse(parts[1], out int c) && r > 0 && c > 0
                ? (r, c)
                : throw new ArgumentException($"--matvec: '{s}' is not a shape like 4096x4096");
        }).ToList();

    private static List<WeightType> ParseTypes(string text) => text.Trim() == "all"
        ? WeightTypes.All.Select(f => f.Type).Where(t => t != WeightType.LowRank).ToList()
        : text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(name =>
            WeightTypes.TryGet(name, out var info)
                ? info.Type
                : throw new ArgumentException($"--types: unknown weight format '{name}' (known: {string.Join(", ", WeightTypes.All.Select(t => t.Name))})")).ToList();

    /// <summary>
    /// Writes rows as they are measured: md and csv line by line (a long run shows its progress and keeps what it
    /// measured), json as one array at the end.
    /// </summary>
    private sealed class BenchReport(string kind, bool matVec, string backend)
    {
        private readonly List<(string Model, string Device, Measurement Row)> _rows = [];
        private bool _started;

        public void Add(string model, string device, Measurement m)
        {
            var inv = CultureInfo.InvariantCulture;
            _rows.Add((model, device, m));
            if (kind == "json") return;
            if (!_started)
            {
                Console.Out.Write(kind == "csv"
                    ? "model,backend,device,format,kv_cache,test,rate_mean,rate_sd,weight_bytes,weight_gb_per_s,dispatches_per_token\n"
                    : matVec
                        ? "| model | backend | device | format | test | mat-vec/s | weight MB read | weight GB/s |\n| --- | --- | --- | --- | --- | ---: | ---: | ---: |\n"
                        : "| model | backend | device | format | KV cache | test | t/s | weight MB read | weight GB/s | dispatches/token |\n| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |\n");
                _started = true;
            }
            string cache = m.CacheType?.Name() ?? "";
            Console.Out.Write(kind == "csv"
                ? string.Create(inv, $"{model},{backend},\"{device}\",{m.Format},{cache},{m.Test},{m.Mean:F3},{m.StandardDeviation:F3},{m.BytesPerUnit},{m.GigabytesPerSecond:F3},{m.DispatchesPerToken}\n")
                : matVec
                    ? string.Create(inv, $"| {model} | {backend} | {device} | {m.Format} | {m.Test} | {m.Mean:F2} ± {m.StandardDeviation:F2} | {m.BytesPerUnit / 1e6:F2} | {m.GigabytesPerSecond:F2} |\n")
                    : string.Create(inv, $"| {model} | {backend} | {device} | {m.Format} | {cache} | {m.Test} | {m.Mean:F2} ± {m.StandardDeviation:F2} | {m.BytesPerUnit / 1e6:F2} | {m.GigabytesPerSecond:F2} | {m.DispatchesPerToken} |\n"));
            Console.Out.Flush();
        }

        public void Finish()
        {
            if (kind != "json") return;
            using var stream = Console.OpenStandardOutput();
            using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                writer.WriteStartArray();
                foreach (var (model, device, m) in _rows)
                {
                    writer.WriteStartObject();
                    writer.WriteString("model", model);
                    writer.WriteString("backend", backend);
                    writer.WriteString("device", device);
                    writer.WriteString("format", m.Format);
                    if (m.CacheType is { } cache) writer.WriteString("kv_cache", cache.Name());
                    else writer.WriteNull("kv_cache");
                    writer.WriteString("test", m.Test);
                    writer.WriteNumber("rate_mean", m.Mean);
                    writer.WriteNumber("rate_sd", m.StandardDeviation);
                    writer.WriteNumber("weight_bytes", m.BytesPerUnit);
                    writer.WriteNumber("weight_gb_per_s", m.GigabytesPerSecond);
                    if (m.DispatchesPerToken is int dispatches) writer.WriteNumber("dispatches_per_token", dispatches);
                    else writer.WriteNull("dispatches_per_token");
                    writer.WriteStartArray("rates");
                    foreach (double r in m.Rates) writer.WriteNumberValue(r);
                    writer.WriteEndArray();
                    writer.WriteEndObject();
                }
                writer.WriteEndArray();
            }
            stream.Write("\n"u8);
        }
    }
}
