using Engine.Formats;
using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// What only RWKV has (its state in pieces and per decode step is checked for every architecture by
/// <see cref="ModelFixtureTests"/>): RWKV-4's rescaling keeps the logits, and RWKV-7 files with layer 0's unused
/// value-residual tensors load as the ones without.
/// </summary>
public sealed class RwkvModelTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Rwkv4_rescaled_every_block_matches_the_unscaled_reference()
    {
        // Halving the hidden state every block and scaling block i's outputs by 2^-i changes nothing but the layer
        // norms' epsilon share, so the logits stay at the reference; a scale applied in the wrong place would not.
        string source = TestPaths.Shared("fixtures", "hf-tiny", "rwkv4");
        string copy = Path.Combine(_temp.Root, "rwkv4-rescaled");
        Directory.CreateDirectory(copy);
        File.Copy(Path.Combine(source, "model.safetensors"), Path.Combine(copy, "model.safetensors"));
        string config = File.ReadAllText(Path.Combine(source, "config.json"));
        Assert.Contains("\"rescale_every\": 0", config);
        File.WriteAllText(Path.Combine(copy, "config.json"), config.Replace("\"rescale_every\": 0", "\"rescale_every\": 1"));

        var reference = new ReferenceFile(Path.Combine(source, "reference.json"));
        float[] expected = reference.Logits.SelectMany(row => row).ToArray();
        foreach (var backend in new[] { BackendKind.Cpu, BackendKind.Vulkan })
            WeightFormatChecks.AssertClose(expected, FixtureRun.Logits(copy, backend, reference), 1e-3, $"rwkv4 rescaled every block on {backend}");
    }

    [Fact]
    public void Rwkv7_ignores_layer_0_value_residual_tensors()
    {
        // RWKV-LM's training code gives layer 0 a v0/v1/v2 it never uses; released checkpoints drop them.
        string source = TestPaths.Shared("fixtures", "rwkv", "rwkv7");
        string copy = Path.Combine(_temp.Root, "rwkv7-with-v012");
        Directory.CreateDirectory(copy);
        foreach (string name in new[] { "config.json", "reference.json" })
            File.Copy(Path.Combine(source, name), Path.Combine(copy, name));
        var builder = new SafetensorsBuilder();
        using (var file = SafetensorsFile.Open(Path.Combine(source, "model.safetensors")))
        {
            foreach (var info in file.Tensors)
                builder.Add(info.Name, "F32", info.Shape, file.ReadBytes(info.Name));
            long dim = file.Tensors.Single(t => t.Name == "blocks.0.att.x_v").ElementCount;
            long rank = file.Tensors.Single(t => t.Name == "blocks.1.att.v1").Shape[1];
            builder.AddF32("blocks.0.att.v0", [1, 1, dim], WeightFormatChecks.RandomValues((int)dim))
                .AddF32("blocks.0.att.v1", [dim, rank], WeightFormatChecks.RandomValues((int)(dim * rank)))
                .AddF32("blocks.0.att.v2", [rank, dim], WeightFormatChecks.RandomValues((int)(rank * dim)));
        }
        File.WriteAllBytes(Path.Combine(copy, "model.safetensors"), builder.Build());

        var reference = new ReferenceFile(Path.Combine(source, "reference.json"));
        foreach (var backend in new[] { BackendKind.Cpu, BackendKind.Vulkan })
        {
            float[] expected = FixtureRun.Logits(source, backend, reference);
            Assert.Equal(expected, FixtureRun.Logits(copy, backend, reference));
        }
    }
}
