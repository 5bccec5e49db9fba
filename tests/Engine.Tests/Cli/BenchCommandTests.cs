using System.Globalization;
using Engine.Formats;
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
        Assert.Equal("model,backend,device,format,test,rate_mean,rate_sd,weight_bytes,weight_gb_per_s", lines[0]);
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal("copy 64 MiB", rows[0][^5]);  // counted from the end: the quoted device name holds commas
        var formats = rows.Skip(1).Select(r => r[^6]).ToList();
        foreach (var format in WeightTypes.All.Where(f => f.Type != WeightType.LowRank))
            Assert.Contains(format.Name, formats);
        Assert.All(rows, r => Assert.True(double.Parse(r[^1], CultureInfo.InvariantCulture) > 0, string.Join(",", r)));
    }
}

public sealed class ArchitectureBenchCommandTests
{
    [Theory]
    [InlineData(new[] { "bench", "--arch", "transformer9" }, "no benchmark shape for architecture 'transformer9'")]
    [InlineData(new[] { "bench", "--arch", "llama", "--matvec", "64x64" }, "give one of --model PATH, --matvec SHAPES or --arch NAMES")]
    [InlineData(new[] { "bench", "--arch", "llama", "--types", "q5x" }, "unknown weight format 'q5x'")]
    public void Bad_requests_get_a_clear_error(string[] arguments, string message)
    {
        var result = EngineProcess.Run(arguments);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(message, result.Error);
        Assert.DoesNotContain("   at ", result.Error);
    }
}
