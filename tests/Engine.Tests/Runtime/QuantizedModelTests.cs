using Engine.Formats;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// tinyprose-14m quantized to every registered format with its default parameters runs on Vulkan and on the CPU
/// reference: the two backends give the same logits for the same quantized file.
/// </summary>
public sealed class QuantizedModelTests : IDisposable
{
    private static readonly int[] Prompt = [1, 348, 449, 1272, 621, 263, 1000, 17, 42, 3000, 5, 77];

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    public static TheoryData<string> Formats()
    {
        var data = new TheoryData<string>();
        foreach (var format in WeightTypes.All.Where(f => f.Type != WeightType.F32)) data.Add(format.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Vulkan_and_cpu_agree_on_the_quantized_model(string formatName)
    {
        string path = _temp.File(formatName + ".epack");
        using (var source = ModelFile.Open(TestPaths.Shared("models", "tinyprose-14m")))
            ModelQuantizer.Quantize(source, path, ModelQuantizer.CreateRequest(formatName, null, null, null, null, null, []), "test");

        float[] cpu = Logits(path, BackendKind.Cpu);
        float[] vulkan = Logits(path, BackendKind.Vulkan);
        Assert.All(cpu, v => Assert.True(float.IsFinite(v)));
        WeightFormatChecks.AssertClose(cpu, vulkan, 2e-3, $"{formatName} tinyprose logits, Vulkan against CPU");
    }

    private static float[] Logits(string path, BackendKind backend)
    {
        using var model = ModelLoader.Load(path, new ModelOptions { Backend = backend, MaxContext = 32 });
        var logits = new float[Prompt.Length * model.Config.VocabSize];
        model.Forward(model.CreateState(), Prompt, logits, allPositions: true);
        return logits;
    }
}
