using System.Text.Json;
using Engine.Tests.Runtime;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary>The <c>engine logits</c> contract of DESIGN.md, end to end through the command line.</summary>
public sealed class LogitsCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("engine-logits-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData("vulkan")]
    [InlineData("cpu")]
    public void Writes_every_positions_logits_and_greedy_tokens(string backend)
    {
        string model = TestPaths.Shared("fixtures", "hf-tiny", "llama");
        var reference = new ReferenceFile(Path.Combine(model, "reference.json"));
        string input = Path.Combine(_folder, "in.json");
        string output = Path.Combine(_folder, "out.json");
        File.WriteAllText(input, JsonSerializer.Serialize(new Dictionary<string, int[]> { ["input_ids"] = reference.InputIds }));

        var run = EngineProcess.Run("logits", "--model", model, "--input", input, "--output", output, "--greedy", "8", "--backend", backend);

        Assert.True(run.ExitCode == 0, run.Error);
        using var document = JsonDocument.Parse(File.ReadAllBytes(output));
        var logits = document.RootElement.GetProperty("logits").EnumerateArray().ToArray();
        Assert.Equal(reference.InputIds.Length, logits.Length);
        for (int p = 0; p < logits.Length; p++)
        {
            var row = logits[p].EnumerateArray().Select(v => v.GetSingle()).ToArray();
            Assert.Equal(256, row.Length);
            double tolerance = 1e-3 * Math.Max(1, reference.Logits[p].Max(Math.Abs));
            Assert.All(row.Zip(reference.Logits[p]), pair => Assert.InRange(pair.First - pair.Second, -tolerance, tolerance));
        }
        var greedy = document.RootElement.GetProperty("greedy_new_tokens").EnumerateArray().Select(v => v.GetInt32());
        Assert.Equal(reference.GreedyNewTokens, greedy);
    }

    [Fact]
    public void Bad_input_gets_one_clear_line_and_a_nonzero_exit()
    {
        string model = TestPaths.Shared("fixtures", "hf-tiny", "llama");
        string badJson = Path.Combine(_folder, "bad.json");
        File.WriteAllText(badJson, "{\"input_ids\": [1, 2,");
        string outOfVocab = Path.Combine(_folder, "oov.json");
        File.WriteAllText(outOfVocab, "{\"input_ids\": [1, 999]}");
        string output = Path.Combine(_folder, "out.json");

        (string[] Args, string Expected)[] cases =
        [
            (["logits", "--model", model, "--input", badJson, "--output", output], "not valid JSON"),
            (["logits", "--model", model, "--input", outOfVocab, "--output", output, "--backend", "cpu"], "outside the vocabulary"),
            (["logits", "--model", Path.Combine(_folder, "missing"), "--input", outOfVocab, "--output", output], "missing"),
            (["logits", "--model", model, "--input", outOfVocab], "--output"),
            (["logits", "--model", model, "--input", outOfVocab, "--output", output, "--backend", "metal"], "unknown backend"),
            (["logits", "--bogus-flag"], "--bogus-flag"),
            (["frobnicate"], "frobnicate"),
        ];
        foreach (var (args, expected) in cases)
        {
            var run = EngineProcess.Run(args);
            string context = $"engine {string.Join(' ', args)}";
            Assert.NotEqual(0, run.ExitCode);
            string[] lines = run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 1, $"{context}: expected one line on stderr, got:\n{run.Error}");
            Assert.Contains(expected, lines[0]);
            Assert.DoesNotContain("   at ", run.Error);
        }
    }
}
