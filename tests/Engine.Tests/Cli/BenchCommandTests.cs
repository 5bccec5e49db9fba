using System.Globalization;
using System.Text.Json;
using Engine.Formats;
using Engine.Runtime;
using Engine.Runtime.Benchmarks;
using Engine.Runtime.Vulkan;
using Xunit;

namespace Engine.Tests.Cli;

public sealed class BenchCommandTests
{
    [Fact]
    public void Matvec_bench_has_a_copy_row_and_a_row_per_format_in_csv()
    {
        var result = EngineProcess.Run("bench", "--matvec", "67x200", "--iterations", "2", "-r", "2", "--output", "csv");
        Assert.True(result.ExitCode == 0, result.Error);
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("model,backend,device,format,kv_cache,test,rate_mean,rate_sd,weight_bytes,weight_gb_per_s,dispatches_per_token", lines[0]);
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal("copy 64 MiB", rows[0][^6]);  // counted from the end: the quoted device name holds commas
        var formats = rows.Skip(1).Select(r => r[^8]).ToList();
        Assert.All(rows, r => Assert.Equal("", r[^7]));   // no KV cache in a mat-vec
        foreach (var format in WeightTypes.All.Where(f => f.Type != WeightType.LowRank))
            Assert.Contains(format.Name, formats);
        // Rates and bytes, not GB/s: a 67x200 matrix on a loaded machine can print 0.000 GB/s.
        Assert.All(rows, r => Assert.True(double.Parse(r[^5], CultureInfo.InvariantCulture) > 0 && long.Parse(r[^3], CultureInfo.InvariantCulture) > 0, string.Join(",", r)));
        Assert.All(rows, r => Assert.Equal("", r[^1]));   // no decode step in a mat-vec
    }
}

public sealed class ModelBenchCommandTests
{
    private static string Model => TestPaths.Shared("models", "tinyprose-14m");

    [Fact]
    public void Vulkan_json_has_a_sampled_generation_row_and_the_dispatches_of_one_decode_step()
    {
        var result = EngineProcess.Run("bench", "--model", Model, "-p", "8", "-n", "6", "-r", "2", "--sampled", "--output", "json");
        Assert.True(result.ExitCode == 0, result.Error);
        using var json = JsonDocument.Parse(result.Output);
        var rows = json.RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("test").GetString()!);
        Assert.Equal(new[] { "pp8", "tg6", "tg6 sampled" }, rows.Keys.ToArray());
        foreach (var row in rows.Values)
        {
            Assert.Equal("vulkan", row.GetProperty("backend").GetString());
            Assert.Equal("f16", row.GetProperty("kv_cache").GetString());   // the default
            Assert.True(row.GetProperty("rate_mean").GetDouble() > 0, row.ToString());
            Assert.Equal(2, row.GetProperty("rates").GetArrayLength());
            Assert.All(row.GetProperty("rates").EnumerateArray(), r => Assert.True(r.GetDouble() > 0, row.ToString()));
        }
        Assert.Equal(JsonValueKind.Null, rows["pp8"].GetProperty("dispatches_per_token").ValueKind);
        int dispatches = rows["tg6"].GetProperty("dispatches_per_token").GetInt32();
        Assert.True(dispatches > 0);
        Assert.Equal(dispatches, rows["tg6 sampled"].GetProperty("dispatches_per_token").GetInt32());

        // What the recorder counts for one decode step of the same model, here.
        using var model = ModelLoader.Load(Model, new ModelOptions { Backend = BackendKind.Vulkan, MaxContext = 16 });
        var state = model.CreateState();
        var logits = new float[model.Config.VocabSize];
        model.Forward(state, [1, 2, 3], logits, allPositions: false);
        var recorder = ((VulkanBackend)model.Backend).Recorder;
        recorder.ResetCounters();
        model.Forward(state, [4], logits, allPositions: false);
        Assert.Equal(1, recorder.HostWaits);
        Assert.Equal(recorder.DispatchCount, dispatches);
        Assert.Equal(dispatches, ModelBenchmark.DispatchesPerDecodeStep(model, state, 5, logits));
    }

    [Fact]
    public void Cpu_csv_has_the_sampled_row_and_no_dispatch_count()
    {
        var result = EngineProcess.Run("bench", "--model", Model, "--backend", "cpu", "-p", "0", "-n", "4", "-r", "1", "--sampled", "--cache-type", "f32", "--output", "csv");
        Assert.True(result.ExitCode == 0, result.Error);
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("model,backend,device,format,kv_cache,test,rate_mean,rate_sd,weight_bytes,weight_gb_per_s,dispatches_per_token", lines[0]);
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal(new[] { "tg4", "tg4 sampled" }, rows.Select(r => r[^6]).ToArray());
        Assert.All(rows, r => Assert.Equal("f32", r[^7]));
        Assert.All(rows, r => Assert.True(double.Parse(r[^5], CultureInfo.InvariantCulture) > 0, string.Join(",", r)));
        Assert.All(rows, r => Assert.Equal("", r[^1]));
    }

    [Fact]
    public void Markdown_has_the_dispatch_column()
    {
        var result = EngineProcess.Run("bench", "--model", Model, "-p", "0", "-n", "2", "-r", "1", "--sampled");
        Assert.True(result.ExitCode == 0, result.Error);
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith("| weight GB/s | dispatches/token |", lines[0]);
        Assert.Contains("| format | KV cache | test |", lines[0]);
        Assert.Equal(lines[0].Count(c => c == '|'), lines[1].Count(c => c == '|'));
        var sampled = Assert.Single(lines, l => l.Contains("| tg2 sampled |"));
        Assert.Equal(lines[0].Count(c => c == '|'), sampled.Count(c => c == '|'));
        Assert.Contains("| f16 | tg2 sampled |", sampled);
        Assert.True(int.Parse(sampled.Split('|', StringSplitOptions.TrimEntries)[^2], CultureInfo.InvariantCulture) > 0, sampled);
    }
}

public sealed class ArchitectureBenchCommandTests
{
    [Theory]
    [InlineData(new[] { "bench", "--arch", "transformer9" }, "no benchmark shape for architecture 'transformer9'")]
    [InlineData(new[] { "bench", "--arch", "llama", "--matvec", "64x64" }, "give one of --model PATH, --matvec SHAPES or --arch NAMES")]
    [InlineData(new[] { "bench", "--arch", "llama", "--types", "q5x" }, "unknown weight format 'q5x'")]
    [InlineData(new[] { "bench", "--arch", "llama", "--cache-type", "q8" }, "unknown cache type 'q8' (expected f16 or f32)")]
    public void Bad_requests_get_a_clear_error(string[] arguments, string message)
    {
        var result = EngineProcess.Run(arguments);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(message, result.Error);
        Assert.DoesNotContain("   at ", result.Error);
    }
}
