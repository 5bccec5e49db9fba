using Engine.Formats;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// Every architecture's fixture quantized to .epack in q4 and in SEFP: Vulkan and the CPU reference agree on the
/// quantized file, and its logits stay near the float reference (the quantization error, not a broken layout).
/// </summary>
public sealed class ArchitectureFormatTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    public static TheoryData<string, string> Cases()
    {
        var cases = new TheoryData<string, string>();
        foreach (string folder in new[]
                 {
                     "fixtures/hf-tiny/llama",
                     "fixtures/hf-tiny/qwen2",
                     "fixtures/hf-tiny/rwkv4",
                     "fixtures/rwkv/rwkv6",
                     "fixtures/rwkv/rwkv7",
                     "fixtures/hf-tiny/mamba",
                     "fixtures/hf-tiny/mamba2",
                     "fixtures/hf-tiny/llava",
                     "fixtures/hf-tiny/mixtral",
                     "fixtures/hf-tiny/qwen3_moe",
                 })
            foreach (string format in new[] { "q4", "sefp" })
                cases.Add(folder, format);
        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Quantized_fixture_runs_on_both_backends_near_the_float_reference(string folder, string formatName)
    {
        string source = TestPaths.Shared(folder.Split('/'));
        string path = _temp.File(folder.Replace('/', '-') + "-" + formatName + ".epack");
        using (var file = ModelFile.Open(source))
            ModelQuantizer.Quantize(file, path, ModelQuantizer.CreateRequest(formatName, null, null, null, null, null, []), "test");
        var reference = new ReferenceFile(Path.Combine(source, "reference.json"));

        float[] cpu = FixtureRun.Logits(path, BackendKind.Cpu, reference);
        float[] vulkan = FixtureRun.Logits(path, BackendKind.Vulkan, reference);
        WeightFormatChecks.AssertClose(cpu, vulkan, 2e-3, $"{folder} in {formatName}, Vulkan against CPU");

        // Relative RMS distance from the float logits: about 0.2 for 4-bit RTN on these tiny random models, 1 or more for a
        // wrong layout or decode.
        float[] expected = reference.Logits.SelectMany(row => row).ToArray();
        double difference = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            difference += Math.Pow(cpu[i] - expected[i], 2);
            norm += Math.Pow(expected[i], 2);
        }
        double relative = Math.Sqrt(difference / norm);
        Assert.True(relative < 0.5, $"{folder} in {formatName}: logits are {relative:P1} away from the float reference");
    }
}
