using Engine.Runtime;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// Whole models against their references: Hugging Face transformers' logits and greedy tokens for the tiny fixtures
/// and tinyprose-14m, llama2.c run.c's greedy tokens for stories260K, on both backends.
/// </summary>
public sealed class ModelFixtureTests
{
    public static TheoryData<string, BackendKind> HfCases()
    {
        var cases = new TheoryData<string, BackendKind>();
        foreach (string model in new[] { "fixtures/hf-tiny/llama", "fixtures/hf-tiny/qwen2", "models/tinyprose-14m", "fixtures/hf-tiny/mixtral", "fixtures/hf-tiny/qwen3_moe" })
            foreach (var backend in new[] { BackendKind.Vulkan, BackendKind.Cpu })
                cases.Add(model, backend);
        return cases;
    }

    [Theory]
    [MemberData(nameof(HfCases))]
    public void Logits_and_greedy_tokens_match_transformers(string folder, BackendKind backend)
    {
        string path = TestPaths.Shared(folder.Split('/'));
        var reference = new ReferenceFile(Path.Combine(path, "reference.json"));
        using var model = ModelLoader.Load(path, new ModelOptions { Backend = backend, MaxContext = 128 });
        int vocab = model.Config.VocabSize;
        var state = model.CreateState();
        var logits = new float[reference.InputIds.Length * vocab];
        model.Forward(state, reference.InputIds, logits, allPositions: true);

        for (int position = 0; position < reference.InputIds.Length; position++)
        {
            var expected = reference.Logits[position];
            double tolerance = 1e-3 * Math.Max(1.0, expected.Max(v => Math.Abs((double)v)));
            double worst = 0;
            for (int i = 0; i < vocab; i++) worst = Math.Max(worst, Math.Abs(expected[i] - logits[position * vocab + i]));
            Assert.True(worst <= tolerance, $"{folder} on {backend}: position {position} differs by {worst:G4} (allowed {tolerance:G4})");
        }

        int[] greedy = GreedyDecoder.Continue(model, state, logits.AsSpan((reference.InputIds.Length - 1) * vocab),
            reference.GreedyNewTokens.Length, model.Config.EosTokenIds.ToHashSet());
        Assert.Equal(reference.GreedyNewTokens, greedy);
    }

    [Theory]
    [InlineData(BackendKind.Vulkan)]
    [InlineData(BackendKind.Cpu)]
    public void Stories260K_greedy_tokens_match_llama2c(BackendKind backend)
    {
        string folder = TestPaths.Shared("models", "stories260K");
        var reference = new ReferenceFile(Path.Combine(folder, "reference.json"));
        using var model = ModelLoader.Load(Path.Combine(folder, "stories260K.bin"), new ModelOptions { Backend = backend });
        var state = model.CreateState();
        var logits = new float[model.Config.VocabSize];
        model.Forward(state, reference.InputIds, logits, allPositions: false);
        int[] greedy = GreedyDecoder.Continue(model, state, logits, reference.GreedyNewTokens.Length, []);
        Assert.Equal(reference.GreedyNewTokens, greedy);
    }

    [Fact]
    public void Prefill_in_batches_equals_one_batch()
    {
        // Batches smaller than the prompt, and a prompt fed token by token, must give the same last logits.
        string path = TestPaths.Shared("fixtures", "hf-tiny", "llama");
        int[] prompt = Enumerable.Range(0, 40).Select(i => (i * 37 + 11) % 256).ToArray();
        float[] Last(int maxBatch, bool oneByOne)
        {
            using var model = ModelLoader.Load(path, new ModelOptions { MaxContext = 64, MaxBatch = maxBatch });
            var state = model.CreateState();
            var logits = new float[model.Config.VocabSize];
            if (oneByOne)
                foreach (int token in prompt) model.Forward(state, [token], logits, allPositions: false);
            else
                model.Forward(state, prompt, logits, allPositions: false);
            Assert.Equal(prompt.Length, state.Position);
            return logits;
        }
        float[] whole = Last(64, false);
        foreach (var other in new[] { Last(7, false), Last(64, true) })
            for (int i = 0; i < whole.Length; i++) Assert.Equal(whole[i], other[i], 3e-4f);
    }

    [Fact]
    public void A_vulkan_decode_step_is_one_submission_reusing_its_descriptor_sets()
    {
        using var model = ModelLoader.Load(TestPaths.Shared("fixtures", "hf-tiny", "qwen2"), new ModelOptions { MaxContext = 32 });
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
            Assert.True(backend.Recorder.DispatchCount > 20 * model.Config.LayerCount / 2);
        }
        Assert.Equal(sets, backend.DescriptorSetCount);
    }
}
