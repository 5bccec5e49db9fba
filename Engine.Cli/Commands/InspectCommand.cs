using System.CommandLine;
using System.Globalization;
using Engine.Formats;
using Engine.Formats.Epack;
using Engine.Runtime.Models;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine inspect</c>: what a model file holds: architecture, hyper-parameters, tensors, formats and bits per
/// weight measured from the stored bytes; for an .epack also its version, recipe, provenance and tokenizer, and with
/// <c>--verify</c> every tensor's checksum.
/// </summary>
public static class InspectCommand
{
    /// <summary>Files smaller than this verify too fast for a progress bar.</summary>
    private const long ProgressThreshold = 256L << 20;

    public static Command Create()
    {
        var path = new Argument<string>("path") { Description = "A Hugging Face folder, an .epack file or a llama2.c .bin" };
        var verify = new Option<bool>("--verify") { Description = "Check every tensor of an .epack file against its XXH3-64 (exit 1 on a mismatch)" };
        var command = new Command("inspect", "Show a model's architecture, hyper-parameters, tensors, formats and bits per weight") { path, verify };
        command.SetAction(parse =>
        {
            var inv = CultureInfo.InvariantCulture;
            var o = Console.Out;
            using var file = ModelFile.Open(parse.GetValue(path)!);
            var epack = file.Tensors as EpackFile;
            if (parse.GetValue(verify) && epack is null)
                throw new ArgumentException($"--verify needs an .epack file; {file.Path} holds no checksums");
            var c = file.Config;
            o.WriteLine($"path: {file.Path}");
            o.WriteLine($"architecture: {c.Architecture}");
            string heads = c.HeadCount > 0 ? $", heads: {c.HeadCount} (kv {c.KvHeadCount}, dim {c.HeadDim})" : "";
            o.WriteLine($"vocab: {c.VocabSize}, hidden: {c.HiddenSize}, layers: {c.LayerCount}{heads}, ffn: {c.IntermediateSize}");
            o.WriteLine(ArchitectureRegistry.IsRecurrent(c.Architecture)
                ? string.Create(inv, $"state: recurrent (fixed size, no context limit), norm eps: {c.RmsNormEps}, tied head: {c.TieWordEmbeddings}")
                : string.Create(inv, $"context: {c.MaxPositions}, rope theta: {c.RopeTheta}, rope layout: {c.RopeLayout}, norm eps: {c.RmsNormEps}, tied head: {c.TieWordEmbeddings}"));
            o.WriteLine($"bos: {c.BosTokenId?.ToString(inv) ?? "none"}, eos: [{string.Join(", ", c.EosTokenIds)}]");
            if (epack is not null) PrintEpack(epack);
            o.WriteLine();

            var sizes = StoredSizes.Of(file.Tensors.Tensors, name => epack?.GetByteRange(name).Length ?? file.Tensors.Require(name).Layout.TotalBytes);
            o.WriteLine("| tensor | shape | format | bits/weight | bytes |");
            o.WriteLine("| --- | --- | --- | ---: | ---: |");
            foreach (var t in sizes.Weights)
                o.WriteLine(string.Create(inv, $"| {t.Info.Name} | {t.Info.ShapeText} | {FormatText(t.Info)} | {t.BitsPerWeight:F3} | {t.Bytes} |"));
            foreach (var t in sizes.Companions)
                o.WriteLine(string.Create(inv, $"| {t.Info.Name} (companion) | {t.Info.ShapeText} | {FormatText(t.Info)} | | {t.Bytes} |"));
            o.WriteLine();
            o.WriteLine(string.Create(inv,
                $"tensors: {file.Tensors.Tensors.Count}, parameters: {sizes.Parameters:N0}, weight bytes: {sizes.TotalBytes:N0} ({sizes.TotalBytes / 1048576.0:F1} MiB), bits per weight: {sizes.BitsPerWeight:F3}"));

            if (epack is null || !parse.GetValue(verify)) return 0;
            IReadOnlyList<string> mismatches;
            using (var line = new ProgressLine())
            {
                long total = epack.Entries.Sum(e => e.Length);
                var progress = epack.FileLength >= ProgressThreshold
                    ? line.Reporter<long>(done => ((double)done / total, $"verifying {done / 1048576} of {total / 1048576} MiB"))
                    : null;
                mismatches = epack.Verify(progress);
            }
            if (mismatches.Count == 0)
            {
                o.WriteLine($"verified {epack.Entries.Count} tensors");
                return 0;
            }
            foreach (string name in mismatches) Console.Error.WriteLine($"engine: tensor '{name}' does not match its checksum");
            Console.Error.WriteLine($"engine: {file.Path}: {mismatches.Count} of {epack.Entries.Count} tensors are corrupt");
            return 1;
        });
        return command;
    }

    /// <summary>A tensor's format with its parameters ("f16", "q4 g32").</summary>
    internal static string FormatText(TensorInfo info) => (info.Format.Name + " " + info.Parameters).Trim();

    private static void PrintEpack(EpackFile epack)
    {
        var o = Console.Out;
        var metadata = epack.Metadata;
        o.WriteLine($"epack format version: {epack.FormatVersion}, tensor alignment: {epack.Alignment}, file: {epack.FileLength:N0} bytes");
        o.WriteLine(metadata.Tokenizer is { } tokenizer
            ? $"tokenizer: {tokenizer.Kind} ({tokenizer.Data.Length:N0} bytes){(tokenizer.TokenizerConfigJson is null ? "" : ", tokenizer_config")}{(tokenizer.ChatTemplate is null ? "" : ", chat template")}"
            : "tokenizer: none");
        if (metadata.Recipe is { } recipe)
        {
            string parameters = recipe.Parameters.ToString();
            string overrides = recipe.Overrides.Count == 0 ? "none" : string.Join(", ", recipe.Overrides);
            o.WriteLine($"recipe: {recipe.Format}{(parameters.Length == 0 ? "" : " " + parameters)}, method {recipe.Method}, overrides: {overrides}");
        }
        if (metadata.Provenance is { } provenance)
        {
            o.WriteLine($"source: {provenance.Source} ({string.Join(", ", provenance.SourceFiles.Select(f => $"{Path.GetFileName(f.Path)} {f.Bytes:N0} bytes"))})");
            o.WriteLine($"made: {provenance.CreatedUtc.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)} UTC by engine {provenance.ToolVersion}: {provenance.CommandLine}");
        }
    }
}
