using Engine.Runtime;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// The recurrent state of Mamba and Mamba-2: a prompt fed in pieces (and token by token) gives the logits of one call,
/// Reset forgets everything, and a Vulkan decode step is one submission.
/// </summary>
public sealed class MambaModelTests
{
    public static TheoryData<string, BackendKind> Cases()
    {
        var cases = new TheoryData<string, BackendKind>();
        foreach (string model in new[] { "mamba", "mamba2" })
            foreach (var backend in new[] { BackendKind.Vulkan, BackendKind.Cpu })
                cases.Add(model, backend);
        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Prompt_in_pieces_equals_one_call(string folder, BackendKind backend)
    {
        // 21 tokens: several of Mamba-2's 8-token chunks and a partial one; batches of 6 split chunks.
        int[] prompt = Enumerable.Range(0, 21).Select(i => (i * 37 + 11) % 256).ToArray();
        using var model = ModelLoader.Load(TestPaths.Shared("fixtures", "hf-tiny", folder), new ModelOptions { Backend = backend, MaxBatch = 6 });
        int vocab = model.Config.VocabSize;

        float[] Run(int[] pieces)
        {
            var state = model.CreateState();
            var logits = new float[prompt.Length * vocab];
            int done = 0;
            foreach (int count in pieces)
            {
                model.Forward(state, prompt.AsSpan(done, count), logits.AsSpan(done * vocab, count * vocab), allPositions: true);
                done += count;
            }
            Assert.Equal(prompt.Length, state.Position);
            return logits;
        }

        float[] whole = Run([prompt.Length]);
        foreach (var pieces in new[] { new[] { 5, 1, 9, 6 }, Enumerable.Repeat(1, prompt.Length).ToArray() })
            Formats.WeightFormatChecks.AssertClose(whole, Run(pieces), 1e-4, $"{folder} on {backend} in pieces of {string.Join(",", pieces.Take(4))}");

        // Reset forgets the prompt: the same state then gives the first call's logits again.
        var reused = model.CreateState();
        var first = new float[vocab];
        model.Forward(reused, prompt.AsSpan(0, 3), new float[3 * vocab], allPositions: true);
        reused.Reset();
        Assert.Equal(0, reused.Position);
        model.Forward(reused, prompt.AsSpan(0, 1), first, allPositions: false);
        Formats.WeightFormatChecks.AssertClose(whole.AsSpan(0, vocab).ToArray(), first, 1e-5, $"{folder} on {backend} after Reset");
    }

    [Theory]
    [InlineData("mamba")]
    [InlineData("mamba2")]
    public void A_vulkan_decode_step_is_one_submission_reusing_its_descriptor_sets(string folder)
    {
        using var model = ModelLoader.Load(TestPaths.Shared("fixtures", "hf-tiny", folder), new ModelOptions { MaxContext = 32 });
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
            Assert.True(backend.Recorder.DispatchCount >= 5 * model.Config.LayerCount);
        }
        Assert.Equal(sets, backend.DescriptorSetCount);
    }
}
