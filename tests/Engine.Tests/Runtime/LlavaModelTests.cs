using System.Text.Json.Nodes;
using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// LLaVA beyond the whole-prompt reference: the image's features follow the image tokens across Forward calls and
/// batches, survive a state reset, decode with one host wait, and wrong images or prompts get clear errors.
/// </summary>
public sealed class LlavaModelTests
{
    private static readonly string Folder = TestPaths.Shared("fixtures", "hf-tiny", "llava");
    private static readonly ReferenceFile Reference = new(Path.Combine(Folder, "reference.json"));

    private static IMultimodalModel Load(BackendKind backend, int maxBatch = 512) =>
        Assert.IsAssignableFrom<IMultimodalModel>(ModelLoader.Load(Folder, new ModelOptions { Backend = backend, MaxContext = 64, MaxBatch = maxBatch }));

    [Theory]
    [InlineData(BackendKind.Vulkan)]
    [InlineData(BackendKind.Cpu)]
    public void Prompt_in_pieces_equals_one_call(BackendKind backend)
    {
        int[] prompt = Reference.InputIds;
        float[] Last(int maxBatch, int[] cuts)
        {
            using var model = Load(backend, maxBatch);
            var state = FixtureRun.CreateState(model, Reference);
            var logits = new float[model.Config.VocabSize];
            int start = 0;
            foreach (int end in cuts.Append(prompt.Length))
            {
                model.Forward(state, prompt.AsSpan(start, end - start), logits, allPositions: false);
                start = end;
            }
            Assert.Equal(prompt.Length, state.Position);
            return logits;
        }
        float[] whole = Last(512, []);
        Assert.Equal(Reference.Logits[^1], whole, (a, b) => Math.Abs(a - b) <= 1e-3 * Math.Max(1, Reference.Logits[^1].Max(Math.Abs)));
        // Cuts inside the run of image tokens, batches that split it, and one token at a time.
        foreach (var other in new[] { Last(512, [3, 10, 17]), Last(5, []), Last(512, Enumerable.Range(1, prompt.Length - 1).ToArray()) })
            for (int i = 0; i < whole.Length; i++) Assert.Equal(whole[i], other[i], 3e-4f);
    }

    [Fact]
    public void A_reset_state_replays_the_prompt_with_its_image_and_cleared_images_are_gone()
    {
        using var model = Load(BackendKind.Cpu);
        var state = FixtureRun.CreateState(model, Reference);
        int vocab = model.Config.VocabSize;
        var first = new float[vocab];
        var again = new float[vocab];
        model.Forward(state, Reference.InputIds, first, allPositions: false);
        state.Reset();
        model.Forward(state, Reference.InputIds, again, allPositions: false);
        Assert.Equal(first, again);

        model.ClearImages(state);
        Assert.Equal(0, state.Position);
        model.Forward(state, Reference.InputIds, again, allPositions: false);
        Assert.True(first.Zip(again).Max(p => Math.Abs(p.First - p.Second)) > 1e-2, "without the image the image tokens are plain embeddings");

        // An image attached after clearing (its features stored where the cleared one's were) is seen as before.
        model.ClearImages(state);
        model.AddImages(state, Reference.PixelValues!, Reference.PixelValuesShape!);
        model.Forward(state, Reference.InputIds, again, allPositions: false);
        Assert.Equal(first, again);
    }

    [Fact]
    public void A_vulkan_decode_step_after_an_image_waits_for_the_device_once()
    {
        using var model = Load(BackendKind.Vulkan);
        var backend = Assert.IsType<Engine.Runtime.Vulkan.VulkanBackend>(model.Backend);
        var state = FixtureRun.CreateState(model, Reference);
        var logits = new float[model.Config.VocabSize];
        model.Forward(state, Reference.InputIds, logits, allPositions: false);
        model.Forward(state, [4], logits, allPositions: false);
        int sets = backend.DescriptorSetCount;
        for (int step = 0; step < 3; step++)
        {
            backend.Recorder.ResetCounters();
            model.Forward(state, [5 + step], logits, allPositions: false);
            Assert.Equal(1, backend.Recorder.HostWaits);
        }
        Assert.Equal(sets, backend.DescriptorSetCount);
    }

    [Fact]
    public void Wrong_images_and_too_many_image_tokens_are_clear_errors()
    {
        using var model = Load(BackendKind.Cpu);
        Assert.Equal(255, model.ImageTokenId);
        Assert.Equal(16, model.TokensPerImage);
        Assert.Equal([3, 32, 32], model.ImageShape);
        var state = model.CreateState();
        var pixels = Reference.PixelValues!;
        Assert.Contains("does not fit", Assert.Throws<ArgumentException>(() => model.AddImages(state, pixels, [1, 3, 16, 64])).Message);
        Assert.Contains("needs", Assert.Throws<ArgumentException>(() => model.AddImages(state, pixels.AsSpan(1), [1, 3, 32, 32])).Message);
        Assert.Contains("must be", Assert.Throws<ArgumentException>(() => model.AddImages(state, pixels, [3072])).Message);

        model.AddImages(state, pixels, [3, 32, 32]);
        int[] twoImagesOfTokens = [1, .. Enumerable.Repeat(255, 32)];
        var logits = new float[model.Config.VocabSize];
        Assert.Contains("fill 16", Assert.Throws<ArgumentException>(() => model.Forward(state, twoImagesOfTokens, logits, allPositions: false)).Message);
        Assert.Equal(0, state.Position);
    }

    [Theory]
    [InlineData(BackendKind.Vulkan)]
    [InlineData(BackendKind.Cpu)]
    public void Two_images_fill_their_own_tokens_in_order(BackendKind backend)
    {
        // The first image's tokens see the first image: the same logits as with that image alone; swapping the two
        // images changes what the last position sees.
        using var model = Load(backend);
        var pixels = Reference.PixelValues!;
        var flipped = pixels.Reverse().ToArray();
        int[] image = Enumerable.Repeat(255, 16).ToArray();
        int[] prompt = [1, .. image, 7, .. image, 9];
        var both = model.CreateState();
        model.AddImages(both, [.. pixels, .. flipped], [2, 3, 32, 32]);
        var logitsBoth = new float[prompt.Length * model.Config.VocabSize];
        model.Forward(both, prompt, logitsBoth, allPositions: true);

        var swapped = model.CreateState();
        model.AddImages(swapped, flipped, [1, 3, 32, 32]);
        model.AddImages(swapped, pixels, [1, 3, 32, 32]);
        var logitsSwapped = new float[logitsBoth.Length];
        model.Forward(swapped, prompt, logitsSwapped, allPositions: true);

        var firstOnly = model.CreateState();
        model.AddImages(firstOnly, pixels, [1, 3, 32, 32]);
        var logitsFirst = new float[18 * model.Config.VocabSize];
        model.Forward(firstOnly, prompt.AsSpan(0, 18), logitsFirst, allPositions: true);

        Assert.Equal(logitsFirst, logitsBoth.AsSpan(0, logitsFirst.Length).ToArray(), (a, b) => Math.Abs(a - b) <= 1e-4f);
        int v = model.Config.VocabSize;
        Assert.True(logitsBoth.AsSpan(prompt.Length * v - v).ToArray().Zip(logitsSwapped.AsSpan(prompt.Length * v - v).ToArray())
            .Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "the order of the images matters");
    }

    /// <summary>The fixture with config.json fields replaced, in a temporary folder.</summary>
    private static string Variant(TempDirectory temp, string name, Action<JsonObject> change)
    {
        string folder = Directory.CreateDirectory(temp.File(name)).FullName;
        foreach (string file in new[] { "generation_config.json", "model.safetensors" })
            File.Copy(Path.Combine(Folder, file), Path.Combine(folder, file));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "config.json")))!.AsObject();
        change(config);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        return folder;
    }

    [Fact]
    public void Feature_layers_count_from_either_end_and_the_full_strategy_keeps_the_class_token()
    {
        using var temp = new TempDirectory();
        // hidden_states[1] is hidden_states[-2] of a two-layer tower: the reference's logits exactly.
        string layerOne = Variant(temp, "layer1", c => c["vision_feature_layer"] = 1);
        float[] logits = FixtureRun.Logits(layerOne, BackendKind.Cpu, Reference);
        int vocab = logits.Length / Reference.InputIds.Length;
        for (int p = 0; p < Reference.InputIds.Length; p++)
        {
            double tolerance = 1e-3 * Math.Max(1, Reference.Logits[p].Max(Math.Abs));
            for (int i = 0; i < vocab; i++) Assert.InRange(logits[p * vocab + i] - Reference.Logits[p][i], -tolerance, tolerance);
        }

        string full = Variant(temp, "full", c => c["vision_feature_select_strategy"] = "full");
        using (var model = Assert.IsAssignableFrom<IMultimodalModel>(ModelLoader.Load(full, new ModelOptions { Backend = BackendKind.Cpu, MaxContext = 64 })))
            Assert.Equal(17, model.TokensPerImage);

        (Action<JsonObject> Change, string Expected)[] bad =
        [
            (c => c["vision_feature_layer"] = -4, "vision_feature_layer -4"),
            (c => c["vision_feature_layer"] = new JsonArray(-2, -1), "list of layers"),
            (c => c["vision_feature_select_strategy"] = "pooled", "'pooled'"),
            (c => c["projector_hidden_act"] = "relu6", "'relu6'"),
            (c => c["image_token_index"] = 999, "outside the vocabulary"),
            (c => c.Remove("vision_config"), "vision_config"),
        ];
        for (int i = 0; i < bad.Length; i++)
        {
            string folder = Variant(temp, $"bad{i}", bad[i].Change);
            var error = Assert.ThrowsAny<Exception>(() => ModelLoader.Load(folder, new ModelOptions { Backend = BackendKind.Cpu }).Dispose());
            Assert.True(error is InvalidDataException or NotSupportedException, error.ToString());
            Assert.Contains(bad[i].Expected, error.Message);
        }
    }
}
