using System.Text.Json;
using Engine.Formats;
using Engine.Formats.Epack;
using Engine.Tests.Runtime;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary>tinyprose-14m quantized by the engine command, once per format, with the logits of each model cached per backend.</summary>
public sealed class QuantizedTinyprose : IDisposable
{
    private readonly Dictionary<string, string> _packs = [];
    private readonly Dictionary<(string Model, string Backend), float[][]> _logits = [];

    public string Folder { get; } = Directory.CreateTempSubdirectory("engine-quantize-").FullName;

    public string Source { get; } = TestPaths.Shared("models", "tinyprose-14m");

    public void Dispose() => Directory.Delete(Folder, recursive: true);

    /// <summary>The .epack of tinyprose in <paramref name="format"/>, made by <c>engine quantize</c> on first use.</summary>
    public string Pack(string format)
    {
        if (_packs.TryGetValue(format, out string? path)) return path;
        path = Path.Combine(Folder, $"tinyprose-{format}.epack");
        var run = EngineProcess.Run("quantize", Source, "-o", path, "--format", format);
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Empty(run.Error);
        return _packs[format] = path;
    }

    /// <summary>The logits of every position of the reference prompt from <c>engine logits</c>.</summary>
    public float[][] Logits(string model, string backend)
    {
        if (_logits.TryGetValue((model, backend), out var cached)) return cached;
        string input = Path.Combine(Folder, "input.json");
        var reference = new ReferenceFile(Path.Combine(Source, "reference.json"));
        File.WriteAllText(input, JsonSerializer.Serialize(new Dictionary<string, int[]> { ["input_ids"] = reference.InputIds }));
        string output = Path.Combine(Folder, $"logits-{Path.GetFileName(model)}-{backend}.json");
        var run = EngineProcess.Run("logits", "--model", model, "--input", input, "--output", output, "--backend", backend);
        Assert.True(run.ExitCode == 0, run.Error);
        using var document = JsonDocument.Parse(File.ReadAllBytes(output));
        return _logits[(model, backend)] = [.. document.RootElement.GetProperty("logits").EnumerateArray()
            .Select(row => row.EnumerateArray().Select(v => v.GetSingle()).ToArray())];
    }
}

public sealed class QuantizeCommandTests(QuantizedTinyprose tinyprose) : IClassFixture<QuantizedTinyprose>
{
    [Fact]
    public void Gptq_calibrates_on_a_text_file_and_says_on_what()
    {
        string output = Path.Combine(tinyprose.Folder, "tinyprose-gptq.epack");
        string calib = TestPaths.Shared("data", "brown-calib.txt");
        var run = EngineProcess.Run("quantize", tinyprose.Source, "-o", output, "--format", "q4", "--method", "gptq",
            "--calib", calib, "--calib-windows", "2", "--calib-ctx", "48");
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Contains("calibration: brown-calib.txt", run.Output);
        Assert.Contains("2 windows of 48 tokens", run.Output);
        using var file = EpackFile.Open(output);
        Assert.Equal("gptq", file.Metadata.Recipe!.Method);
    }

    /// <summary>f16 and bf16 (tinyprose's own format, so an exact copy), and q8 once the table has it.</summary>
    public static TheoryData<string, string> FormatsAndBackends()
    {
        var data = new TheoryData<string, string>();
        foreach (string format in new[] { "f16", "bf16", "q8" }.Where(name => WeightTypes.TryGet(name, out _)))
            foreach (string backend in new[] { "vulkan", "cpu" })
                data.Add(format, backend);
        return data;
    }

    [Theory]
    [MemberData(nameof(FormatsAndBackends))]
    public void A_quantized_tinyprose_gives_the_source_logits(string format, string backend)
    {
        float[][] expected = tinyprose.Logits(tinyprose.Source, backend);
        float[][] actual = tinyprose.Logits(tinyprose.Pack(format), backend);

        double scale = expected.SelectMany(row => row).Max(v => Math.Abs(v));
        double tolerance = format switch
        {
            "bf16" => 1e-6 * scale,
            "f16" => 1e-4 * scale,
            _ => 3e-2 * scale,
        };
        Assert.Equal(expected.Length, actual.Length);
        double worst = expected.Zip(actual).SelectMany(pair => pair.First.Zip(pair.Second, (e, a) => Math.Abs(e - a))).Max();
        Assert.True(worst <= tolerance, $"{format} on {backend}: largest logit difference {worst} > {tolerance}");
    }

    [Fact]
    public void Quantize_prints_a_table_and_the_pack_runs_text_commands_with_its_own_tokenizer()
    {
        string path = Path.Combine(tinyprose.Folder, "kept.epack");
        var run = EngineProcess.Run("quantize", tinyprose.Source, "-o", path, "--format", "f16", "--keep", "model.layers.0.*", "--keep", "*.mlp.down_proj.weight=f32");
        Assert.True(run.ExitCode == 0, run.Error);

        string[] lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("| model.layers.0.self_attn.q_proj.weight | [384, 384] | bf16 | 16.000 | 0 |", lines);
        Assert.Contains(lines, l => l.StartsWith("| model.layers.1.self_attn.q_proj.weight | [384, 384] | f16 | 16.000 | ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("| model.layers.1.mlp.down_proj.weight | [384, 1024] | f32 | 32.000 | 0 |", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("| model.norm.weight | [384] | f32 | 32.000 | 0 |", StringComparison.Ordinal));
        Assert.StartsWith("total: 74 tensors, 14,162,304 weights, ", lines[^1]);
        Assert.Contains($"{path}: {new FileInfo(path).Length:N0} bytes", lines[^1]);

        using (var file = EpackFile.Open(path))
        {
            var recipe = file.Metadata.Recipe!;
            Assert.Equal(("f16", default(FormatParameters), "rtn"), (recipe.Format, recipe.Parameters, recipe.Method));
            Assert.Equal(["model.layers.0.*", "*.mlp.down_proj.weight=f32"], recipe.Overrides);
            Assert.Equal(Path.GetFullPath(tinyprose.Source), file.Metadata.Provenance!.Source);
            Assert.Contains(file.Metadata.Provenance.SourceFiles, f => f.Path.EndsWith("model-00002-of-00003.safetensors", StringComparison.Ordinal) && f.Bytes == 11806440);
            Assert.Contains("--keep model.layers.0.*", file.Metadata.Provenance.CommandLine);
        }

        var generate = EngineProcess.Run("generate", "-m", path, "-p", "The jury said", "-n", "8", "--temperature", "0", "--backend", "cpu");
        var reference = EngineProcess.Run("generate", "-m", tinyprose.Source, "-p", "The jury said", "-n", "8", "--temperature", "0", "--backend", "cpu");
        Assert.True(generate.ExitCode == 0, generate.Error);
        Assert.Equal(reference.Output, generate.Output);
    }

    [Fact]
    public void Inspect_verify_passes_on_a_good_file_and_names_the_tensor_with_a_flipped_byte()
    {
        string good = tinyprose.Pack("f16");
        var run = EngineProcess.Run("inspect", good, "--verify");
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Contains("epack format version: 1", run.Output);
        Assert.Contains("tokenizer: sentencepiece (61,382 bytes)", run.Output);
        Assert.Contains("recipe: f16, method rtn, overrides: none", run.Output);
        Assert.Contains("engine quantize ", run.Output);
        Assert.Contains("| model.layers.3.mlp.up_proj.weight | [1024, 384] | f16 | 16.000 | 786432 |", run.Output);
        Assert.EndsWith("verified 74 tensors\n", run.Output.ReplaceLineEndings("\n"));

        string bad = Path.Combine(tinyprose.Folder, "flipped.epack");
        byte[] bytes = File.ReadAllBytes(good);
        long offset;
        using (var file = EpackFile.Open(good)) offset = file.GetByteRange("model.layers.3.mlp.up_proj.weight").Offset;
        bytes[offset + 1000] ^= 0x01;
        File.WriteAllBytes(bad, bytes);
        var failed = EngineProcess.Run("inspect", bad, "--verify");
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("engine: tensor 'model.layers.3.mlp.up_proj.weight' does not match its checksum", failed.Error);
        Assert.DoesNotContain("verified", failed.Output);
    }

    [Fact]
    public void Bad_requests_print_one_line_and_exit_nonzero()
    {
        string output = Path.Combine(tinyprose.Folder, "never.epack");
        string missing = Path.Combine(tinyprose.Folder, "no-such-model");
        (string[] Args, string Expected)[] cases =
        [
            (["quantize", tinyprose.Source, "-o", output, "--format", "q5x"], "unknown format 'q5x' (known: f32, f16, bf16"),
            (["quantize", tinyprose.Source, "-o", output, "--format", "f16", "--group-size", "32"], "f16 takes no format parameters, got g32"),
            (["quantize", tinyprose.Source, "-o", output, "--format", "f16", "--group-size", "0"], "--group-size must be positive, got 0"),
            (["quantize", missing, "-o", output, "--format", "f16"], "does not exist"),
            (["quantize", tinyprose.Source, "-o", Path.Combine(missing, "out.epack"), "--format", "f16"], "does not exist"),
            (["quantize", tinyprose.Source, "-o", Path.Combine(tinyprose.Folder, "out.bin"), "--format", "f16"], "must be an .epack file"),
            (["quantize", tinyprose.Source, "-o", output, "--format", "f16", "--method", "gptq"], "method 'gptq' is not implemented for f16; f16 has rtn"),
            (["quantize", tinyprose.Source, "-o", output, "--format", "q4", "--method", "pcdvq"], "q4 has rtn, gptq"),
            (["quantize", tinyprose.Source, "-o", output, "--format", "q4", "--method", "gptq", "--calib", missing], "calibration text not found"),
            (["quantize", tinyprose.Source, "-o", output, "--format", "q4", "--method", "gptq", "--calib-windows", "0"], "--calib-windows must be at least 1"),
            (["quantize", tinyprose.Source, "-o", output, "--format", "f16", "--method", "magic"], "unknown method 'magic'"),
            (["quantize", tinyprose.Source, "-o", output, "--format", "f16", "--keep", "lm_head.weight=q9"], "unknown format 'q9'"),
            (["quantize", tinyprose.Source, "-o", output, "--format", "f16", "--keep", "decoder.*"], "--keep decoder.*: no tensor"),
            (["quantize", tinyprose.Source, "-o", output], "--format"),
            (["inspect", tinyprose.Source, "--verify"], "--verify needs an .epack file"),
        ];
        foreach (var (args, expected) in cases)
        {
            var run = EngineProcess.Run(args);
            string context = $"engine {string.Join(' ', args)}";
            Assert.True(run.ExitCode != 0, $"{context}: exit code 0");
            string[] lines = run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 1, $"{context}: expected one line on stderr, got:\n{run.Error}");
            Assert.Contains(expected, lines[0]);
        }
        Assert.Empty(Directory.EnumerateFiles(tinyprose.Folder, "*never*", SearchOption.AllDirectories));
        Assert.Empty(Directory.EnumerateFiles(tinyprose.Folder, "*.tmp", SearchOption.AllDirectories));
    }
}
