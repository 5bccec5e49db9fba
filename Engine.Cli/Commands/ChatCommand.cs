using System.CommandLine;
using System.Text;
using Engine.Runtime;
using Engine.Runtime.Chat;
using Engine.Runtime.Sampling;
using Engine.Runtime.Vision;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine chat</c>: an interactive conversation over standard input (a terminal or a pipe), rendered with the
/// model's chat template (a plain "User:/Assistant:" layout for models without one), streamed as it is produced.
/// Ctrl+C stops the current reply; /exit or end of input ends the program.
/// </summary>
public static class ChatCommand
{
    private const string Help = "commands: /reset forgets the conversation, /image FILE attaches an image (PNG or JPEG) to the next message (vision models), /bits N reads N mantissa bits of SEFP weights (2..7, 0 = all), /help shows this, /exit quits (so does end of input); Ctrl+C stops a reply";

    public static Command Create()
    {
        var arguments = new ModelArguments(defaultModel: true);
        var sampling = new SamplingOptionsBinder();
        var count = new Option<int>("--n-predict", "-n") { Description = "Most tokens per reply", DefaultValueFactory = _ => 256 };
        var system = new Option<string?>("--system") { Description = "A system message that opens the conversation" };
        var image = new Option<FileInfo?>("--image") { Description = "An image (PNG or JPEG) the first message is about (vision models)" };
        var command = new Command("chat", "Chat with a model (default: tinyprose-14m) over standard input") { count, system, image };
        arguments.AddTo(command);
        sampling.AddTo(command);
        command.SetAction(parse =>
        {
            int n = parse.GetValue(count);
            if (n < 1) throw new ArgumentException($"--n-predict must be at least 1, got {n}");
            var sampler = new Sampler(sampling.Get(parse));
            var (model, tokenizer) = arguments.LoadWithTokenizer(parse);
            using var _ = model;
            var generator = new TextGenerator(model, tokenizer);
            var vision = model as IMultimodalModel;
            var preprocessor = vision is null ? null : ImagePreprocessor.ForModel(arguments.ModelPath(parse), model.Config);
            var messages = new List<ChatMessage>();
            string? systemText = parse.GetValue(system);
            int pendingImages = 0;
            var imageTokens = new List<int>();   // per attached image, in order
            void Restart()
            {
                messages.Clear();
                generator.Reset();
                pendingImages = 0;
                imageTokens.Clear();
                if (!string.IsNullOrWhiteSpace(systemText)) messages.Add(new ChatMessage("system", systemText));
            }
            void AttachImage(string path)
            {
                var (pixels, shape) = preprocessor!.Load(path);
                generator.AddImage(pixels, shape);
                imageTokens.Add(vision!.ImageTokens(shape.AsSpan(shape.Length - 3)));
                pendingImages++;
            }
            Restart();
            if (parse.GetValue(image) is { } firstImage)
            {
                if (preprocessor is null) throw new ArgumentException($"--image: the model ({model.Config.Architecture}) reads no images");
                AttachImage(firstImage.FullName);
            }

            bool interactive = !Console.IsInputRedirected;
            CancellationTokenSource? reply = null;
            Console.CancelKeyPress += (_, e) =>
            {
                // During a reply Ctrl+C stops the reply; at the prompt it ends the program as usual.
                if (reply is { } current)
                {
                    e.Cancel = true;
                    current.Cancel();
                }
            };
            string AddImage(string path)
            {
                if (preprocessor is null) return $"(the model ({model.Config.Architecture}) reads no images)";
                if (path.Length == 0) return "/image takes the path of a PNG or JPEG file";
                try
                {
                    AttachImage(path);
                }
                catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or NotSupportedException or UnauthorizedAccessException)
                {
                    return e.Message;
                }
                return $"(image {Path.GetFileName(path)} attached to the next message)";
            }
            if (interactive) Console.Error.WriteLine($"{Path.GetFileName(Path.TrimEndingDirectorySeparator(arguments.ModelPath(parse)))} on {model.Backend.DeviceName}; {Help}");
            while (true)
            {
                if (interactive) Console.Out.Write("> ");
                string? line = Console.In.ReadLine();
                if (line is null || line.Trim() == "/exit") return 0;
                line = line.Trim();
                if (line.Length == 0) continue;
                if (line == "/help")
                {
                    Console.Out.WriteLine(Help);
                    continue;
                }
                if (line == "/reset")
                {
                    Restart();
                    Console.Out.WriteLine("(conversation cleared)");
                    continue;
                }
                if (line == "/bits" || line.StartsWith("/bits ", StringComparison.Ordinal))
                {
                    Console.Out.WriteLine(SetPrecision(model, line["/bits".Length..].Trim()));
                    continue;
                }
                if (line == "/image" || line.StartsWith("/image ", StringComparison.Ordinal))
                {
                    Console.Out.WriteLine(AddImage(line["/image".Length..].Trim()));
                    continue;
                }
                if (line.StartsWith('/'))
                {
                    Console.Out.WriteLine($"unknown command {line.Split(' ')[0]}; {Help}");
                    continue;
                }

                if (vision is not null && ImagePrompt.CountMarkers(line) > 0)
                {
                    Console.Out.WriteLine($"(\"{ImagePrompt.Marker}\" marks attached images: use /image FILE)");
                    continue;
                }

                // Each image attached since the last message opens this one; its marker becomes the image tokens.
                messages.Add(new ChatMessage("user", string.Concat(Enumerable.Repeat(ImagePrompt.Marker + "\n", pendingImages)) + line));
                var template = tokenizer.ChatTemplate;
                string rendered = template is not null
                    ? ChatTemplate.Render(template, messages, addGenerationPrompt: true, tokenizer.BosToken, tokenizer.EosToken)
                    : ChatTemplate.RenderPlain(messages, addGenerationPrompt: true);
                int[] Encode(string text, bool opening) => template is not null
                    ? tokenizer.Encode(text, addBos: false, parseSpecial: true)
                    : tokenizer.Encode(text, addBos: opening && tokenizer.AddBosByDefault);
                int[] prompt = vision is not null ? ImagePrompt.Encode(rendered, vision, Encode, imageTokens) : Encode(rendered, true);
                if (prompt.Length + n > model.MaxContext)
                {
                    messages.RemoveAt(messages.Count - 1);
                    Console.Out.WriteLine($"(the conversation no longer fits the {model.MaxContext}-token context: /reset to start over)");
                    continue;
                }
                var answer = new StringBuilder();
                using (reply = new CancellationTokenSource())
                {
                    generator.Generate(prompt, n, sampler, text =>
                    {
                        answer.Append(text);
                        Console.Out.Write(text);
                        Console.Out.Flush();
                    }, reply.Token);
                }
                reply = null;
                pendingImages = 0;
                Console.Out.WriteLine();
                messages.Add(new ChatMessage("assistant", answer.ToString().Trim()));
            }
        });
        return command;
    }

    /// <summary>
    /// Switches the mantissa bits read from SEFP weights between replies, without reloading: the weights stay on the
    /// device and the shaders read fewer (or more) bit-planes from the next token on.
    /// </summary>
    private static string SetPrecision(ILanguageModel model, string argument)
    {
        if (!int.TryParse(argument, out int bits))
            return $"/bits takes a number of mantissa bits (2..7, 0 = all stored); now {Describe(model)}";
        try
        {
            model.Backend.RuntimePrecision = bits;
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
        return $"sefp precision: {Describe(model)}";
    }

    private static string Describe(ILanguageModel model) =>
        (model.Backend.RuntimePrecision == 0 ? "all stored mantissa bits" : $"{model.Backend.RuntimePrecision} mantissa bits")
        + $", {model.WeightBytesPerToken / 1e6:F2} MB of weights read per token";
}
