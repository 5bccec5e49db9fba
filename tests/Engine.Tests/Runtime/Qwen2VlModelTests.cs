using System.Text.Json.Nodes;
using Engine.Formats;
using Engine.Runtime;
using Engine.Runtime.Models;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// Qwen2-VL without a transformers fixture: with text only, multimodal RoPE gives every component the text position,
/// so the Qwen2 fixture's weights under a Qwen2-VL config must reproduce the Qwen2 reference exactly.
/// </summary>
public sealed class Qwen2VlModelTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private const int ImageToken = 250, Text = 64;

    /// <summary>
    /// The Qwen2 fixture re-labelled as Qwen2-VL (text fields at the top level and tensors under "model." as Qwen's
    /// checkpoints have them) with a tiny random vision tower: embed_dim 32, 2 heads, patches of 2×2 over 2 frames,
    /// 2×2 merge windows.
    /// </summary>
    private string Qwen2AsQwen2Vl()
    {
        string source = TestPaths.Shared("fixtures", "hf-tiny", "qwen2");
        string folder = Path.Combine(_temp.Root, "qwen2-vl");
        if (Directory.Exists(folder)) return folder;
        Directory.CreateDirectory(folder);
        foreach (string file in new[] { "reference.json", "generation_config.json" })
            File.Copy(Path.Combine(source, file), Path.Combine(folder, file));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        int headDim = config["hidden_size"]!.GetValue<int>() / config["num_attention_heads"]!.GetValue<int>();
        int quarter = headDim / 8;
        config["model_type"] = "qwen2_vl";
        config["architectures"] = new JsonArray("Qwen2VLForConditionalGeneration");
        config["rope_scaling"] = new JsonObject
        {
            ["type"] = "mrope",
            ["mrope_section"] = new JsonArray(quarter, (headDim / 2 - quarter) / 2, headDim / 2 - quarter - (headDim / 2 - quarter) / 2),
        };
        config["image_token_id"] = ImageToken;
        config["vision_start_token_id"] = ImageToken - 2;
        config["vision_end_token_id"] = ImageToken - 1;
        config["vision_config"] = new JsonObject
        {
            ["depth"] = 2, ["embed_dim"] = 32, ["hidden_size"] = Text, ["hidden_act"] = "quick_gelu", ["mlp_ratio"] = 2,
            ["num_heads"] = 2, ["in_channels"] = 3, ["patch_size"] = 2, ["spatial_merge_size"] = 2, ["temporal_patch_size"] = 2,
        };
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());

        var b = new SafetensorsBuilder();
        using (var qwen2 = SafetensorsFile.Open(Path.Combine(source, "model.safetensors")))
            foreach (var info in qwen2.Tensors)
                b.Add(info.Name, "F32", info.Shape, qwen2.ReadBytes(info.Name));
        // A fixed seed: the same tower in every run, so replies compared across runs are reproducible.
        var random = new Random(4);
        float[] Random(int count, double scale) => [.. Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale))];
        void Add(string name, params int[] shape) =>
            b.AddF32("visual." + name, [.. shape.Select(d => (long)d)], Random(shape.Aggregate(1, (x, y) => x * y), 0.3));
        void Norm(string name)
        {
            b.AddF32($"visual.{name}.weight", [32], [.. Random(32, 0.1).Select(v => 1 + v)]);
            Add(name + ".bias", 32);
        }
        Add("patch_embed.proj.weight", 32, 3, 2, 2, 2);
        for (int i = 0; i < 2; i++)
        {
            string p = $"blocks.{i}.";
            Norm(p + "norm1");
            Norm(p + "norm2");
            Add(p + "attn.qkv.weight", 96, 32);
            Add(p + "attn.qkv.bias", 96);
            Add(p + "attn.proj.weight", 32, 32);
            Add(p + "attn.proj.bias", 32);
            Add(p + "mlp.fc1.weight", 64, 32);
            Add(p + "mlp.fc1.bias", 64);
            Add(p + "mlp.fc2.weight", 32, 64);
            Add(p + "mlp.fc2.bias", 32);
        }
        Norm("merger.ln_q");
        Add("merger.mlp.0.weight", 128, 128);
        Add("merger.mlp.0.bias", 128);
        Add("merger.mlp.2.weight", Text, 128);
        Add("merger.mlp.2.bias", Text);
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), b.Build());
        return folder;
    }

    /// <summary>A normalised 8×12 image (4×6 patches, 2×3 image tokens): not square, so rows and columns cannot swap unnoticed.</summary>
    private static readonly float[] Pixels = [.. Enumerable.Range(0, 3 * 8 * 12).Select(i => MathF.Sin(i * 0.7f) * 1.5f)];
    private static readonly int[] PixelShape = [3, 8, 12];

    /// <summary>Text, the image's 6 tokens, more text.</summary>
    private static readonly int[] ImagePrompt = [1, 17, 40, .. Enumerable.Repeat(ImageToken, 6), 90, 33, 7, 120, 5];

    private float[] ImagePromptLogits(BackendKind backend, int maxBatch, int[] pieces, int decodeSteps = 2)
    {
        using var model = Assert.IsType<Qwen2VlModel>(ModelLoader.Load(Qwen2AsQwen2Vl(), new ModelOptions { Backend = backend, MaxContext = 64, MaxBatch = maxBatch }));
        var state = model.CreateState();
        model.AddImages(state, Pixels, PixelShape);
        int vocab = model.Config.VocabSize;
        var logits = new float[(ImagePrompt.Length + decodeSteps) * vocab];
        int start = 0;
        foreach (int count in pieces)
        {
            model.Forward(state, ImagePrompt.AsSpan(start, count), logits.AsSpan(start * vocab, count * vocab), allPositions: true);
            start += count;
        }
        for (int step = 0; step < decodeSteps; step++)
            model.Forward(state, [3 + step], logits.AsSpan((ImagePrompt.Length + step) * vocab, vocab), allPositions: false);
        return logits;
    }

    [Fact]
    public void An_image_prompt_runs_alike_on_both_backends()
    {
        float[] cpu = ImagePromptLogits(BackendKind.Cpu, 64, [ImagePrompt.Length]);
        WeightFormatChecks.AssertClose(cpu, ImagePromptLogits(BackendKind.Vulkan, 64, [ImagePrompt.Length]), 1e-3, "Vulkan against CPU");
        // The image changes what follows it.
        using var model = ModelLoader.Load(Qwen2AsQwen2Vl(), new ModelOptions { Backend = BackendKind.Cpu, MaxContext = 64 });
        var textOnly = new float[ImagePrompt.Length * model.Config.VocabSize];
        model.Forward(model.CreateState(), ImagePrompt, textOnly, allPositions: true);
        Assert.True(cpu.Take(textOnly.Length).Zip(textOnly).Max(p => Math.Abs(p.First - p.Second)) > 1e-2, "the image makes no difference");
    }

    [Theory]
    [InlineData(BackendKind.Cpu)]
    [InlineData(BackendKind.Vulkan)]
    public void An_image_prompt_fed_in_pieces_equals_one_call(BackendKind backend)
    {
        float[] whole = ImagePromptLogits(backend, 64, [ImagePrompt.Length]);
        // Batches of 4 and pieces of 5 and 2 split the image across batches; token by token feeds it one row at a time.
        WeightFormatChecks.AssertClose(whole, ImagePromptLogits(backend, 4, [ImagePrompt.Length]), 1e-4, "in batches of 4");
        WeightFormatChecks.AssertClose(whole, ImagePromptLogits(backend, 64, [5, 2, ImagePrompt.Length - 7]), 1e-4, "in three calls");
        WeightFormatChecks.AssertClose(whole, ImagePromptLogits(backend, 64, [.. Enumerable.Repeat(1, ImagePrompt.Length)]), 1e-4, "token by token");
    }

    [Fact]
    public void Rope_index_places_an_image_on_its_grid_and_text_after_its_largest_side()
    {
        // As get_rope_index: 3 text tokens, a 2x3 merged image starting at 3, text from 3 + max(2, 3) = 6.
        int[] batch = [1, 2, 3, ImageToken, ImageToken, ImageToken, ImageToken, ImageToken, ImageToken, 4, 5];
        var positions = new int[batch.Length * 3];
        int imageStart = -1;
        Qwen2VlModel.RopeIndex(batch, ImageToken, [(2, 3)], 0, 0, ref imageStart, positions);
        int[][] expected =
        [
            [0, 0, 0], [1, 1, 1], [2, 2, 2],
            [3, 3, 3], [3, 3, 4], [3, 3, 5], [3, 4, 3], [3, 4, 4], [3, 4, 5],
            [6, 6, 6], [7, 7, 7],
        ];
        Assert.Equal(expected.SelectMany(p => p), positions);

        // The same image split after its second token: the rest continues from the kept start.
        var rest = new int[6 * 3];
        Qwen2VlModel.RopeIndex(batch.AsSpan(5), ImageToken, [(2, 3)], 2, 99, ref imageStart, rest);
        Assert.Equal(positions.AsSpan(5 * 3).ToArray(), rest);
    }

    [Fact]
    public void Vision_rotary_angles_and_patch_order_of_a_grid()
    {
        // Patches come in 2x2 merge windows: on a 4-wide grid the 5th patch opens the second window (row 0, column 2).
        (int, int)[] order = [.. Enumerable.Range(0, 8).Select(k => Qwen2VisionEncoder.PatchPosition(k, 4, 2))];
        Assert.Equal([(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3)], order);

        // Head dim 8: pairs 0-1 turn by the row, 2-3 by the column, at frequencies 10000^(-2j/4), j = 0, 1.
        float[] table = Qwen2VisionEncoder.RotaryTable(3, 8);
        for (int p = 0; p < 3; p++)
            for (int i = 0; i < 4; i++)
            {
                double angle = p * Math.Pow(10000, -2.0 * (i % 2) / 4);
                Assert.Equal(Math.Cos(angle), table[(p * 4 + i) * 2], 1e-6);
                Assert.Equal(Math.Sin(angle), table[(p * 4 + i) * 2 + 1], 1e-6);
            }
    }

    [Theory]
    [InlineData(BackendKind.Vulkan)]
    [InlineData(BackendKind.Cpu)]
    public void Text_only_equals_the_qwen2_reference(BackendKind backend)
    {
        string folder = Qwen2AsQwen2Vl();
        var reference = new ReferenceFile(Path.Combine(folder, "reference.json"));
        using var model = ModelLoader.Load(folder, new ModelOptions { Backend = backend, MaxContext = 128 });
        Assert.Equal("qwen2_vl", model.Config.Architecture);
        int vocab = model.Config.VocabSize;
        var state = model.CreateState();
        var logits = new float[reference.InputIds.Length * vocab];
        model.Forward(state, reference.InputIds, logits, allPositions: true);
        for (int position = 0; position < reference.InputIds.Length; position++)
        {
            var expected = reference.Logits[position];
            double tolerance = 1e-3 * Math.Max(1.0, expected.Max(v => Math.Abs((double)v)));
            double worst = Enumerable.Range(0, vocab).Max(i => Math.Abs(expected[i] - logits[position * vocab + i]));
            Assert.True(worst <= tolerance, $"position {position} differs by {worst:G4} (allowed {tolerance:G4})");
        }
        int[] greedy = GreedyDecoder.Continue(model, state, logits.AsSpan((reference.InputIds.Length - 1) * vocab),
            reference.GreedyNewTokens.Length, model.Config.EosTokenIds.ToHashSet());
        Assert.Equal(reference.GreedyNewTokens, greedy);
    }

    [Fact]
    public void A_vulkan_decode_step_waits_for_the_device_once()
    {
        // After an image: its shifted text positions need no upload either.
        using var model = Assert.IsType<Qwen2VlModel>(ModelLoader.Load(Qwen2AsQwen2Vl(), new ModelOptions { MaxContext = 32 }));
        var backend = Assert.IsType<Engine.Runtime.Vulkan.VulkanBackend>(model.Backend);
        var state = model.CreateState();
        model.AddImages(state, Pixels, PixelShape);
        var logits = new float[model.Config.VocabSize];
        model.Forward(state, ImagePrompt, logits, allPositions: false);
        for (int step = 0; step < 3; step++)
        {
            backend.Recorder.ResetCounters();
            model.Forward(state, [5 + step], logits, allPositions: false);
            Assert.Equal(1, backend.Recorder.HostWaits);
        }
    }

    [Theory]
    [InlineData(100, 200, 3136, 1003520, 112, 196)]   // nearest multiples of 28 fit
    [InlineData(70, 42, 3136, 1003520, 56, 56)]       // 2.5 and 1.5 round half to even, as Python's round
    [InlineData(1000, 2000, 3136, 200704, 308, 616)]  // too many pixels: scaled down, floored
    [InlineData(20, 30, 3136, 1003520, 56, 84)]       // too few: scaled up, ceiled
    public void Smart_resize_matches_the_processor(int height, int width, int minPixels, int maxPixels, int expectedHeight, int expectedWidth) =>
        Assert.Equal((expectedHeight, expectedWidth), Qwen2VlPatches.SmartResize(height, width, 28, minPixels, maxPixels));

    [Fact]
    public void Patches_are_flattened_by_merge_window_then_channel_then_frame()
    {
        // 2 channels of 2x4 pixels, 1-pixel patches, 2 frames, 2x2 windows: value = channel·100 + row·10 + column.
        float[] image = [.. Enumerable.Range(0, 16).Select(i => (float)(i / 8 * 100 + i % 8 / 4 * 10 + i % 4))];
        float[] patches = Qwen2VlPatches.Flatten(image, 2, 2, 4, 1, 2, 2);
        (int Y, int X)[] order = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3)];
        float[] expected = [.. order.SelectMany(p => new float[] { p.Y * 10 + p.X, p.Y * 10 + p.X, 100 + p.Y * 10 + p.X, 100 + p.Y * 10 + p.X })];
        Assert.Equal(expected, patches);
    }

    [Fact]
    public void The_qwen2_vl_preprocessor_resizes_to_a_multiple_of_the_patch_window_without_cropping()
    {
        var pre = Engine.Runtime.Vision.ImagePreprocessor.FromJson(
            """
            {"image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 3136, "max_pixels": 1003520, "patch_size": 14, "merge_size": 2,
             "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
            """, "test");
        var rgb = new byte[30 * 20 * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i * 7);
        var (pixels, shape) = pre.Process(rgb, 30, 20);
        Assert.Equal([1, 3, 56, 84], shape);
        Assert.Equal(3 * 56 * 84, pixels.Length);
    }

    [Fact]
    public void An_image_of_the_wrong_size_is_a_clear_error()
    {
        using var model = Assert.IsType<Qwen2VlModel>(ModelLoader.Load(Qwen2AsQwen2Vl(), new ModelOptions { Backend = BackendKind.Cpu, MaxContext = 64 }));
        Assert.Equal(6, model.ImageTokens(PixelShape));
        var state = model.CreateState();
        Assert.Contains("multiples of 4", Assert.Throws<ArgumentException>(() => model.AddImages(state, new float[3 * 6 * 12], [3, 6, 12])).Message);
        model.AddImages(state, Pixels, PixelShape);
        var logits = new float[model.Config.VocabSize];
        Assert.Contains("fill 6", Assert.Throws<ArgumentException>(() => model.Forward(state, [.. Enumerable.Repeat(ImageToken, 7)], logits, false)).Message);
    }

    [Fact]
    public void Chat_reads_an_image_at_its_own_resolution()
    {
        // Byte-level tokenizer (ids = bytes); the processor's factor is 2·2, so the 5x3 picture becomes 16x12 (min_pixels
        // 128): 8x6 patches, 4x3 image tokens framed by vision_start / vision_end.
        string model = Qwen2AsQwen2Vl();
        File.WriteAllText(Path.Combine(model, "tokenizer.json"), Engine.Tests.Tokenization.TinyTokenizerJson.ByteLevel([], new JsonArray()).ToJsonString());
        File.WriteAllText(Path.Combine(model, "preprocessor_config.json"),
            """{"image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 128, "max_pixels": 1024, "patch_size": 2, "merge_size": 2, "temporal_patch_size": 2}""");
        string Picture(string name, int shift)
        {
            string path = Path.Combine(_temp.Root, name);
            File.WriteAllBytes(path, TestPng.Encode(5, 3, 3, [.. Enumerable.Range(0, 45).Select(i => (byte)(i * 53 + shift))]));
            return path;
        }
        string picture = Picture("picture.png", 91), other = Picture("other.png", 200);
        string[] chat = ["chat", "-m", model, "-n", "6", "--temperature", "0", "--backend", "cpu"];

        var withOption = Engine.Tests.Cli.EngineProcess.RunWithInput("Hi\n", [.. chat, "--image", picture]);
        var withCommand = Engine.Tests.Cli.EngineProcess.RunWithInput($"/image {picture}\nHi\n", chat);
        var otherImage = Engine.Tests.Cli.EngineProcess.RunWithInput($"/image {other}\nHi\n", chat);
        var noImage = Engine.Tests.Cli.EngineProcess.RunWithInput("Hi\n", chat);
        foreach (var run in new[] { withOption, withCommand, otherImage, noImage }) Assert.True(run.ExitCode == 0, run.Error);
        string Reply(Engine.Tests.Cli.EngineProcess.Result run) =>
            string.Join('\n', run.Output.Split('\n').Where(l => !l.StartsWith("(image ", StringComparison.Ordinal))).Trim();
        // (Random weights: a reply may end at once on a stop token; this tower's seed gives the two images replies.)
        Assert.NotEmpty(Reply(withOption));
        Assert.NotEmpty(Reply(otherImage));
        Assert.Equal(Reply(withOption), Reply(withCommand));
        Assert.NotEqual(Reply(withOption), Reply(otherImage));
        Assert.NotEqual(Reply(withOption), Reply(noImage));

        using var loaded = Assert.IsType<Qwen2VlModel>(ModelLoader.Load(model, new ModelOptions { Backend = BackendKind.Cpu, MaxContext = 64 }));
        var (_, shape) = Engine.Runtime.Vision.ImagePreprocessor.ForModel(model, loaded.Config).Load(picture);
        Assert.Equal([1, 3, 12, 16], shape);
        int[] ids = Engine.Runtime.Vision.ImagePrompt.Encode("a<image>b", loaded, (text, _) => [.. text.Select(c => (int)c)], [12]);
        Assert.Equal([97, ImageToken - 2, .. Enumerable.Repeat(ImageToken, 12), ImageToken - 1, 98], ids);
    }

    [Fact]
    public void Logits_take_the_processors_flattened_patches_and_grid()
    {
        // The processor's pixel_values (patches in merge-window order) with image_grid_thw give what the image itself gives.
        string model = Qwen2AsQwen2Vl();
        float[] patches = Qwen2VlPatches.Flatten(Pixels, 3, 8, 12, 2, 2, 2);
        string input = Path.Combine(_temp.Root, "in.json"), output = Path.Combine(_temp.Root, "out.json");
        File.WriteAllText(input, System.Text.Json.JsonSerializer.Serialize(new { input_ids = ImagePrompt, pixel_values = patches, image_grid_thw = new[] { new[] { 1, 4, 6 } } }));
        var run = Engine.Tests.Cli.EngineProcess.Run("logits", "--model", model, "--input", input, "--output", output, "--backend", "cpu");
        Assert.True(run.ExitCode == 0, run.Error);
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(output));
        float[] logits = [.. document.RootElement.GetProperty("logits").EnumerateArray().SelectMany(r => r.EnumerateArray()).Select(v => v.GetSingle())];
        WeightFormatChecks.AssertClose(ImagePromptLogits(BackendKind.Cpu, 64, [ImagePrompt.Length], decodeSteps: 0), logits, 1e-5, "patches and grid");

        File.WriteAllText(input, System.Text.Json.JsonSerializer.Serialize(new { input_ids = ImagePrompt.Where((_, i) => i != 3).ToArray(), pixel_values = patches, image_grid_thw = new[] { 1, 4, 6 } }));
        var wrong = Engine.Tests.Cli.EngineProcess.Run("logits", "--model", model, "--input", input, "--output", output, "--backend", "cpu");
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.Contains("5 image tokens", wrong.Error);
        File.WriteAllText(input, System.Text.Json.JsonSerializer.Serialize(new { input_ids = ImagePrompt, pixel_values = patches[1..], image_grid_thw = new[] { 1, 4, 6 } }));
        wrong = Engine.Tests.Cli.EngineProcess.Run("logits", "--model", model, "--input", input, "--output", output, "--backend", "cpu");
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.Contains("24 per patch", wrong.Error);
    }

    [Theory]
    [InlineData("q4")]
    [InlineData("sefp")]
    public void A_quantized_model_with_an_image_runs_alike_on_both_backends(string formatName)
    {
        string path = Path.Combine(_temp.Root, $"qwen2-vl-{formatName}.epack");
        using (var file = ModelFile.Open(Qwen2AsQwen2Vl()))
            Engine.Quantizers.ModelQuantizer.Quantize(file, path, Engine.Quantizers.ModelQuantizer.CreateRequest(formatName, null, null, null, null, null, []), "test");
        float[] Run(BackendKind backend)
        {
            using var model = Assert.IsType<Qwen2VlModel>(ModelLoader.Load(path, new ModelOptions { Backend = backend, MaxContext = 64 }));
            var state = model.CreateState();
            model.AddImages(state, Pixels, PixelShape);
            var logits = new float[ImagePrompt.Length * model.Config.VocabSize];
            model.Forward(state, ImagePrompt, logits, allPositions: true);
            return logits;
        }
        float[] cpu = Run(BackendKind.Cpu);
        WeightFormatChecks.AssertClose(cpu, Run(BackendKind.Vulkan), 2e-3, $"{formatName}: Vulkan against CPU");
        // Near the float model, as ArchitectureFormatTests measures it: relative RMS distance (about 0.2 for 4-bit RTN on
        // tiny random models, 1 or more for a wrong layout).
        float[] expected = ImagePromptLogits(BackendKind.Cpu, 64, [ImagePrompt.Length], decodeSteps: 0);
        double relative = Math.Sqrt(expected.Zip(cpu).Sum(p => Math.Pow(p.First - p.Second, 2)) / expected.Sum(v => (double)v * v));
        Assert.True(relative < 0.5, $"{formatName}: logits are {relative:P1} away from the float model");
    }
}
