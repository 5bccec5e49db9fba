using Engine.Formats;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Runtime.Benchmarks;
using Engine.Runtime.Models;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// The path of <c>engine bench --arch</c>: an architecture loaded from random weights declared by its own loader.
/// Run here at each fixture's small shape (the 1B-class shapes are for benchmark machines).
/// </summary>
public sealed class SyntheticModelTests
{
    public static TheoryData<string> Fixtures() => new(ModelFixtureTests.HfCases().Select(c => (string)c[0]).Distinct());

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Every_architecture_runs_the_benchmark_on_random_weights_at_its_fixture_shape(string folder)
    {
        var config = HfConfigReader.Read(TestPaths.Shared(folder.Split('/')));
        using var weights = new SyntheticTensors(WeightType.Q4);
        using var model = ModelLoader.Load(config, weights, new ModelOptions { Backend = BackendKind.Vulkan, MaxContext = 32 });
        var rows = ModelBenchmark.Run(model, promptTokens: 9, generatedTokens: 3, repetitions: 1);
        Assert.Equal(["pp9", "tg3"], rows.Select(r => r.Test));
        Assert.All(rows, r => Assert.True(r.Mean > 0 && r.BytesPerUnit > 0));
        Assert.Contains("q4", model.WeightFormats);
    }

    [Fact]
    public void Every_benchmark_shape_is_a_registered_architecture_with_a_valid_config()
    {
        foreach (string name in BenchmarkModels.Names)
        {
            var config = HfConfigReader.FromJson(BenchmarkModels.Config(name), null, name);
            Assert.Contains(config.Architecture, ArchitectureRegistry.Names, StringComparer.OrdinalIgnoreCase);
            Assert.True(config.HiddenSize >= 1536 && config.LayerCount >= 16, $"{name} is not at a 1B-class shape");
        }
    }

    [Fact]
    public void A_synthetic_source_refuses_a_second_shape_and_undeclared_reads()
    {
        using var weights = new SyntheticTensors(WeightType.F16);
        weights.Declare("w", [3, 4]);
        Assert.Throws<InvalidDataException>(() => weights.Declare("w", [4, 3]));
        Assert.Throws<InvalidDataException>(() => weights.ReadBytes("missing"));
        Assert.Equal(WeightType.F16, weights.Tensors.Single().Type);
    }
}
