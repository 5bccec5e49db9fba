using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Tests.Runtime;
using Engine.Tests.Tokenization;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary>Images through the command line: pixel values in <c>engine logits</c>, <c>chat --image</c> and <c>/image</c>.</summary>
public sealed class VisionCommandTests : IDisposable
{
    private static readonly string Llava = TestPaths.Shared("fixtures", "hf-tiny", "llava");
    private readonly string _folder = Directory.CreateTempSubdirectory("engine-vision-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Input(string name, object content)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllText(path, JsonSerializer.Serialize(content));
        return path;
    }

    [Theory]
    [InlineData("vulkan")]
    [InlineData("cpu")]
    public void Logits_with_pixel_values_match_transformers(string backend)
    {
        var reference = new ReferenceFile(Path.Combine(Llava, "reference.json"));
        string input = Input("in.json", new { input_ids = reference.InputIds, pixel_values = reference.PixelValues, pixel_values_shape = reference.PixelValuesShape });
        string output = Path.Combine(_folder, "out.json");

        var run = EngineProcess.Run("logits", "--model", Llava, "--input", input, "--output", output, "--greedy", "8", "--backend", backend);

        Assert.True(run.ExitCode == 0, run.Error);
        using var document = JsonDocument.Parse(File.ReadAllBytes(output));
        var logits = document.RootElement.GetProperty("logits").EnumerateArray().ToArray();
        Assert.Equal(reference.InputIds.Length, logits.Length);
        for (int p = 0; p < logits.Length; p++)
        {
            var row = logits[p].EnumerateArray().Select(v => v.GetSingle()).ToArray();
            double tolerance = 1e-3 * Math.Max(1, reference.Logits[p].Max(Math.Abs));
            Assert.All(row.Zip(reference.Logits[p]), pair => Assert.InRange(pair.First - pair.Second, -tolerance, tolerance));
        }
        Assert.Equal(reference.GreedyNewTokens, document.RootElement.GetProperty("greedy_new_tokens").EnumerateArray().Select(v => v.GetInt32()));
    }

    [Fact]
    public void Pixel_values_that_do_not_fit_get_one_clear_line()
    {
        var reference = new ReferenceFile(Path.Combine(Llava, "reference.json"));
        string output = Path.Combine(_folder, "out.json");
        string textModel = TestPaths.Shared("fixtures", "hf-tiny", "llama");
        int[] fewerImageTokens = reference.InputIds.Where((_, i) => i != 3).ToArray();
        (string Model, string Input, string Expected)[] cases =
        [
            (textModel, Input("text.json", new { input_ids = reference.InputIds, pixel_values = reference.PixelValues, pixel_values_shape = reference.PixelValuesShape }),
                "reads no images"),
            (Llava, Input("count.json", new { input_ids = fewerImageTokens, pixel_values = reference.PixelValues, pixel_values_shape = reference.PixelValuesShape }),
                "15 image tokens"),
            (Llava, Input("shape.json", new { input_ids = reference.InputIds, pixel_values = reference.PixelValues, pixel_values_shape = new[] { 1, 3, 32, 31 } }),
                "pixel_values_shape"),
            (Llava, Input("size.json", new { input_ids = reference.InputIds, pixel_values = reference.PixelValues, pixel_values_shape = new[] { 1, 3, 16, 64 } }),
                "does not fit"),
            (Llava, Input("noshape.json", new { input_ids = reference.InputIds, pixel_values = reference.PixelValues }), "pixel_values_shape"),
        ];
        foreach (var (model, input, expected) in cases)
        {
            var run = EngineProcess.Run("logits", "--model", model, "--input", input, "--output", output, "--backend", "cpu");
            Assert.NotEqual(0, run.ExitCode);
            string[] lines = run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 1, $"{input}: expected one line on stderr, got:\n{run.Error}");
            Assert.Contains(expected, lines[0]);
        }
    }

    /// <summary>The llava fixture with a byte-level tokenizer (ids = byte values), so text commands can run it.</summary>
    private string LlavaWithTokenizer()
    {
        string folder = Directory.CreateDirectory(Path.Combine(_folder, "llava")).FullName;
        foreach (string file in Directory.GetFiles(Llava).Where(f => !f.EndsWith("reference.json", StringComparison.Ordinal)))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), TinyTokenizerJson.ByteLevel([], new JsonArray()).ToJsonString());
        return folder;
    }

    /// <summary>A 5x3 RGB picture of pseudo-random pixels.</summary>
    private string Image(string name, int shift)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, TestPng.Encode(5, 3, 3, Enumerable.Range(0, 45).Select(i => (byte)(i * 53 + shift)).ToArray()));
        return path;
    }

    [Fact]
    public void Chat_image_option_and_command_attach_the_image_to_the_next_message()
    {
        string model = LlavaWithTokenizer();
        string picture = Image("picture.png", 91), other = Image("other.png", 200);
        string[] chat = ["chat", "-m", model, "-n", "6", "--temperature", "0", "--backend", "cpu"];

        var withOption = EngineProcess.RunWithInput("Hi\n", [.. chat, "--image", picture]);
        var withCommand = EngineProcess.RunWithInput($"/image {picture}\nHi\n", chat);
        var otherImage = EngineProcess.RunWithInput($"/image {other}\nHi\n", chat);
        var noImage = EngineProcess.RunWithInput("Hi\n", chat);
        foreach (var run in new[] { withOption, withCommand, otherImage, noImage }) Assert.True(run.ExitCode == 0, run.Error);

        string Reply(EngineProcess.Result run) =>
            string.Join('\n', run.Output.Split('\n').Where(l => !l.StartsWith("(image ", StringComparison.Ordinal))).Trim();
        Assert.NotEmpty(Reply(withOption));
        Assert.Contains("(image picture.png attached to the next message)", withCommand.Output);
        Assert.Equal(Reply(withOption), Reply(withCommand));
        Assert.NotEqual(Reply(withOption), Reply(otherImage));
        Assert.NotEqual(Reply(withOption), Reply(noImage));
    }

    [Fact]
    public void Images_on_a_text_model_and_unreadable_images_get_clear_messages()
    {
        string textModel = TestPaths.Shared("models", "tinyprose-14m");
        string picture = Image("picture.png", 0);
        string corrupt = Path.Combine(_folder, "corrupt.png");
        File.WriteAllBytes(corrupt, [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        string model = LlavaWithTokenizer();

        (string[] Args, string Expected)[] failures =
        [
            (["chat", "-m", textModel, "--image", picture], "reads no images"),
            (["chat", "-m", model, "--image", Path.Combine(_folder, "missing.png"), "--backend", "cpu"], "image file not found"),
            (["chat", "-m", model, "--image", corrupt, "--backend", "cpu"], "not a readable PNG or JPEG"),
        ];
        foreach (var (args, expected) in failures)
        {
            var run = EngineProcess.RunWithInput("Hi\n", args);
            Assert.NotEqual(0, run.ExitCode);
            string[] lines = run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 1, $"engine {string.Join(' ', args)}: expected one line on stderr, got:\n{run.Error}");
            Assert.Contains(expected, lines[0]);
        }

        // In a chat the /image command reports the problem and the conversation goes on.
        var text = EngineProcess.RunWithInput($"/image {picture}\n/exit\n", "chat", "-m", textModel);
        Assert.True(text.ExitCode == 0, text.Error);
        Assert.Contains("reads no images", text.Output);
        var vision = EngineProcess.RunWithInput($"/image {corrupt}\n/image\nsee <image>\nHi\n", "chat", "-m", model, "-n", "3", "--temperature", "0", "--backend", "cpu");
        Assert.True(vision.ExitCode == 0, vision.Error);
        Assert.Contains("not a readable PNG or JPEG", vision.Output);
        Assert.Contains("/image takes the path", vision.Output);
        Assert.Contains("use /image FILE", vision.Output);
    }
}
