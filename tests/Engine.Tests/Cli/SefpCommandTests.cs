using System.Globalization;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary>One SEFP file serves every precision: fewer mantissa bits read fewer bytes and cost perplexity, monotonically.</summary>
public sealed class SefpCommandTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly string _model;

    public SefpCommandTests()
    {
        _model = _temp.File("tinyprose-sefp.epack");
        var quantize = EngineProcess.Run("quantize", TestPaths.Shared("models", "tinyprose-14m"), "-o", _model, "--format", "sefp");
        Assert.True(quantize.ExitCode == 0, quantize.Error);
    }

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Perplexity_rises_monotonically_as_bits_drop()
    {
        double previous = 0;
        foreach (int bits in new[] { 7, 6, 5, 4, 3, 2 })
        {
            var run = EngineProcess.Run("perplexity", "-m", _model, "--file", TestPaths.Shared("data", "brown-heldout.txt"),
                "--chunks", "5", "--backend", "cpu", "--sefp-bits", bits.ToString(CultureInfo.InvariantCulture));
            Assert.True(run.ExitCode == 0, run.Error);
            double perplexity = double.Parse(run.Output.Trim().Split('\n')[^1]["perplexity: ".Length..], CultureInfo.InvariantCulture);
            Assert.True(perplexity > previous, $"{bits} bits: perplexity {perplexity}, with one more bit {previous}");
            previous = perplexity;
        }
    }

    [Fact]
    public void Bench_reads_fewer_weight_bytes_per_token_at_fewer_bits()
    {
        long previous = long.MaxValue;
        foreach (int bits in new[] { 7, 5, 3, 2 })
        {
            var run = EngineProcess.Run("bench", "-m", _model, "-p", "8", "-n", "4", "-r", "1", "--output", "csv", "--sefp-bits", bits.ToString(CultureInfo.InvariantCulture));
            Assert.True(run.ExitCode == 0, run.Error);
            string[] lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            int column = Array.IndexOf(lines[0].Split(','), "weight_bytes");
            Assert.True(column >= 0, lines[0]);
            long bytes = long.Parse(lines[^1].Split(',')[column], CultureInfo.InvariantCulture);
            Assert.True(bytes < previous, $"{bits} bits: {bytes} bytes per token, with more bits {previous}");
            previous = bytes;
        }
    }

    [Fact]
    public void Chat_switches_precision_between_replies_with_bits()
    {
        var run = EngineProcess.RunWithInput("Hello\n/bits 3\nHello\n/bits 1\n/exit\n", "chat", "-m", _model, "-n", "4", "--backend", "cpu");
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Contains("sefp precision: 3 mantissa bits", run.Output);
        Assert.Contains("SEFP precision 1: the run time reads 2 to 7 mantissa bits", run.Output);
    }
}
