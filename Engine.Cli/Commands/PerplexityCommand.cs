using System.CommandLine;
using System.Globalization;
using Engine.Runtime;
using Engine.Runtime.Evaluation;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine perplexity</c>: perplexity over a text file as DESIGN.md defines it (each non-empty line tokenized on its
/// own with BOS in front, the stream cut into fresh windows of --ctx tokens, every fed position scored); with
/// --kl-divergence BASE also the mean KL divergence and top-1 agreement against a base model.
/// </summary>
public static class PerplexityCommand
{
    public static Command Create()
    {
        var arguments = new ModelArguments(defaultModel: false);
        var file = new Option<FileInfo>("--file", "-f") { Description = "Text file, one passage per line", Required = true };
        var context = new Option<int>("--ctx") { Description = "Window length in tokens", DefaultValueFactory = _ => 512 };
        var chunks = new Option<int?>("--chunks") { Description = "Score only the first N windows" };
        var baseModel = new Option<string?>("--kl-divergence") { Description = "A base model (same tokenizer) to measure KL divergence and top-1 agreement against" };
        var command = new Command("perplexity", "Perplexity of a model over a text file (last line: 'perplexity: N')") { file, context, chunks, baseModel };
        arguments.AddTo(command);
        command.SetAction((parse, cancel) =>
        {
            int ctx = parse.GetValue(context);
            if (ctx < 2) throw new ArgumentException($"--ctx must be at least 2, got {ctx}");
            string path = parse.GetValue(file)!.FullName;
            if (!File.Exists(path)) throw new FileNotFoundException($"text file not found: {path}");
            var (model, tokenizer) = arguments.LoadWithTokenizer(parse, contextOverride: ctx);
            using var _ = model;
            using var reference = parse.GetValue(baseModel) is { } basePath
                ? ModelLoader.Load(basePath, arguments.Options(parse, contextOverride: ctx))
                : null;

            var tokens = TextTokens.Read(path, tokenizer);
            bool showProgress = !Console.IsErrorRedirected;
            var result = Perplexity.Evaluate(model, tokens, ctx, reference, parse.GetValue(chunks), (done, total, running) =>
            {
                if (showProgress) Console.Error.Write($"\r[{done}/{total}] perplexity so far {running:F4}   ");
            }, cancel);
            if (showProgress) Console.Error.WriteLine();

            var inv = CultureInfo.InvariantCulture;
            Console.Out.WriteLine(string.Create(inv, $"model: {arguments.ModelPath(parse)} ({model.Backend.DeviceName})"));
            Console.Out.WriteLine(string.Create(inv, $"tokens: {tokens.Count}, windows: {result.Windows} of {ctx}, scored: {result.ScoredTokens}"));
            Console.Out.WriteLine(string.Create(inv, $"mean NLL: {result.MeanNegativeLogLikelihood:F6}"));
            if (result.MeanKlDivergence is double kl)
            {
                Console.Out.WriteLine(string.Create(inv, $"mean KL divergence: {kl:F6}"));
                Console.Out.WriteLine(string.Create(inv, $"top-1 agreement: {result.TopOneAgreement:P3}"));
            }
            Console.Out.WriteLine(string.Create(inv, $"perplexity: {result.Perplexity:F4}"));
            return Task.FromResult(0);
        });
        return command;
    }
}
