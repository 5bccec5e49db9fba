using System.CommandLine;
using Engine.Runtime;
using Engine.Runtime.Sampling;

namespace Engine.Cli.Commands;

/// <summary><c>engine generate</c>: continues a prompt, streaming the text to standard output as it is produced.</summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var arguments = new ModelArguments(defaultModel: true);
        var sampling = new SamplingOptionsBinder();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Text to continue", Required = true };
        var count = new Option<int>("--n-predict", "-n") { Description = "Most tokens to generate", DefaultValueFactory = _ => 128 };
        var command = new Command("generate", "Continue a prompt, streaming tokens as they are produced (statistics go to standard error)")
        {
            prompt, count,
        };
        arguments.AddTo(command);
        sampling.AddTo(command);
        command.SetAction((parse, cancel) =>
        {
            int n = parse.GetValue(count);
            if (n < 0) throw new ArgumentException($"--n-predict must be 0 or more, got {n}");
            var sampler = new Sampler(sampling.Get(parse));
            var (model, tokenizer) = arguments.LoadWithTokenizer(parse);
            using (model)
            {
                var ids = tokenizer.Encode(parse.GetValue(prompt)!, addBos: tokenizer.AddBosByDefault);
                var generator = new TextGenerator(model, tokenizer);
                var stats = generator.Generate(ids, n, sampler, text =>
                {
                    Console.Out.Write(text);
                    Console.Out.Flush();
                }, cancel);
                Console.Out.WriteLine();
                Console.Error.WriteLine(
                    $"prompt: {stats.PromptTokens} tokens, {stats.PromptTokensPerSecond:F1} t/s; generated: {stats.GeneratedTokens} tokens, {stats.GeneratedTokensPerSecond:F1} t/s ({model.Backend.DeviceName})");
            }
            return Task.FromResult(0);
        });
        return command;
    }
}
