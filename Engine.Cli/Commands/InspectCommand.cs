using System.CommandLine;
using System.Globalization;
using Engine.Formats;

namespace Engine.Cli.Commands;

/// <summary><c>engine inspect</c>: what a model file holds: architecture, hyper-parameters, tensors, formats and sizes.</summary>
public static class InspectCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("path") { Description = "A Hugging Face folder or a llama2.c .bin" };
        var command = new Command("inspect", "Show a model's architecture, hyper-parameters, tensors, formats and bits per weight") { path };
        command.SetAction(parse =>
        {
            var inv = CultureInfo.InvariantCulture;
            using var file = ModelFile.Open(parse.GetValue(path)!);
            var c = file.Config;
            Console.Out.WriteLine($"path: {file.Path}");
            Console.Out.WriteLine($"architecture: {c.Architecture}");
            Console.Out.WriteLine($"vocab: {c.VocabSize}, hidden: {c.HiddenSize}, layers: {c.LayerCount}, heads: {c.HeadCount} (kv {c.KvHeadCount}, dim {c.HeadDim}), ffn: {c.IntermediateSize}");
            Console.Out.WriteLine(string.Create(inv, $"context: {c.MaxPositions}, rope theta: {c.RopeTheta}, rope layout: {c.RopeLayout}, norm eps: {c.RmsNormEps}, tied head: {c.TieWordEmbeddings}"));
            Console.Out.WriteLine($"bos: {c.BosTokenId?.ToString(inv) ?? "none"}, eos: [{string.Join(", ", c.EosTokenIds)}]");
            Console.Out.WriteLine();
            Console.Out.WriteLine("| tensor | shape | format | bits/weight | bytes |");
            Console.Out.WriteLine("| --- | --- | --- | ---: | ---: |");
            long parameters = 0, bytes = 0;
            foreach (var t in file.Tensors.Tensors)
            {
                long size = t.Layout.TotalBytes;
                parameters += t.ElementCount;
                bytes += size;
                string format = (t.Format.Name + " " + t.Parameters).Trim();
                Console.Out.WriteLine(string.Create(inv, $"| {t.Name} | {t.ShapeText} | {format} | {size * 8.0 / Math.Max(t.ElementCount, 1):F2} | {size} |"));
            }
            Console.Out.WriteLine();
            Console.Out.WriteLine(string.Create(inv,
                $"tensors: {file.Tensors.Tensors.Count}, parameters: {parameters:N0}, weight bytes: {bytes:N0} ({bytes / 1048576.0:F1} MiB), bits per weight: {bytes * 8.0 / Math.Max(parameters, 1):F3}"));
            return 0;
        });
        return command;
    }
}
