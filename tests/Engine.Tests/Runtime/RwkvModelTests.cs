using Engine.Formats;
using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// The RWKV models' recurrent state: a prompt fed in pieces, token by token or in small batches equals one call,
/// Reset starts over, RWKV-4's rescaling keeps the logits, a Vulkan decode step is one submission, and RWKV-7 files with layer 0's unused value-residual
/// tensors load as the ones without.
/// </summary>
public sealed class RwkvModelTests : IDisposable
{
    private static readonly string[] Folders = ["fixtures/hf-tiny/rwkv4", "fixtures/rwkv/rwkv6", "fixtures/rwkv/rwkv7"];

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    public static TheoryData<string, BackendKind> Cases()
    {
        var cases = new TheoryData<string, BackendKind>();
        foreach (string folder in Folders)
            foreach (var backend in new[] { BackendKind.Vulkan, BackendKind.Cpu })
                cases.Add(folder, backend);
        return cases;
    }

    public static TheoryData<string> FolderCases() => new(Folders);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pieces_equal_the_whole_prompt(string folder, BackendKind backend)
    {
        string path = TestPaths.Shared(folder.Split('/'));
        int[] prompt = Enumerable.Range(0, 40).Select(i => (i * 37 + 11) % 256).ToArray();
        float[] AllLogits(int maxBatch, int[] pieces, bool resetFirst = false)
        {
            using var model = ModelLoader.Load(path, new ModelOptions { Backend = backend, MaxBatch = maxBatch });
            int vocab = model.Config.VocabSize;
            var state = model.CreateState();
            var logits = new float[prompt.Length * vocab];
            if (resetFirst)
            {
                model.Forward(state, prompt.AsSpan(0, 9), logits.AsSpan(0, 9 * vocab), allPositions: true);
                state.Reset();
                Assert.Equal(0, state.Position);
            }
            int start = 0;
            foreach (int count in pieces)
            {
                model.Forward(state, prompt.AsSpan(start, count), logits.AsSpan(start * vocab, count * vocab), allPositions: true);
                start += count;
            }
            Assert.Equal(prompt.Length, state.Position);
            return logits;
        }

        float[] whole = AllLogits(64, [prompt.Length]);
        WeightFormatChecks.AssertClose(whole, AllLogits(7, [prompt.Length]), 1e-5, $"{folder} in batches of 7");
        WeightFormatChecks.AssertClose(whole, AllLogits(64, [3, 10, 27], resetFirst: true), 1e-5, $"{folder} in three calls after a reset");
        WeightFormatChecks.AssertClose(whole, AllLogits(64, Enumerable.Repeat(1, prompt.Length).ToArray()), 1e-5, $"{folder} token by token");
    }

    [Theory]
    [MemberData(nameof(FolderCases))]
    public void A_vulkan_decode_step_is_one_submission_reusing_its_descriptor_sets(string folder)
    {
        using var model = ModelLoader.Load(TestPaths.Shared(folder.Split('/')), new ModelOptions { MaxContext = 32 });
        var backend = Assert.IsType<Engine.Runtime.Vulkan.VulkanBackend>(model.Backend);
        var state = model.CreateState();
        var logits = new float[model.Config.VocabSize];
        model.Forward(state, [1, 2, 3], logits, allPositions: false);
        model.Forward(state, [4], logits, allPositions: false);
        int sets = backend.DescriptorSetCount;
        for (int step = 0; step < 3; step++)
        {
            backend.Recorder.ResetCounters();
            model.Forward(state, [5 + step], logits, allPositions: false);
            Assert.Equal(1, backend.Recorder.Submissions);
            Assert.True(backend.Recorder.DispatchCount > 20 * model.Config.LayerCount);
        }
        Assert.Equal(sets, backend.DescriptorSetCount);
    }

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
