using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Engine.Formats;
using Engine.Formats.Epack;
using Engine.Quantizers;
using Engine.Quantizers.Calibration;
using Engine.Quantizers.Methods;
using Engine.Runtime;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine quantize IN -o OUT.epack --format F</c>: writes a model as a packed file in a weight format, with a
/// progress bar on standard error and, on standard output, a table of every tensor's format, measured bits per weight
/// and relative error, and a total line.
/// </summary>
public static class QuantizeCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "Model to quantize: a Hugging Face folder, a .safetensors file, a llama2.c .bin or an .epack file" };
        var output = new Option<string>("--output", "-o") { Description = "The .epack file to write", Required = true };
        var format = new Option<string?>("--format", "-f")
        {
            Description = $"Weight format: {string.Join(", ", WeightTypes.All.Select(f => f.Name))} (or --target-bpw)",
        };
        var targetBpw = new Option<double?>("--target-bpw")
        {
            Description = "Instead of one format: a bit budget; each layer matrix gets the group integer format (q2..q8, group 32/64/128) that a measured sensitivity (layer error on calibration statistics) favours, the layer matrices averaging at most this many bits per weight (calibrates twice: sensitivities, then GPTQ)",
        };
        var groupSize = new Option<int?>("--group-size") { Description = "Weights per group (scale, exponent) along a row; default: the format's" };
        var bits = new Option<int?>("--bits") { Description = "Format-specific bit width (SEFP mantissa bits, PCDVQ direction bits); default: the format's" };
        var planes = new Option<int?>("--planes") { Description = "Binary sign planes (1 or 2); default: the format's" };
        var rank = new Option<int?>("--rank") { Description = "Low-rank inner dimension; default: the format's" };
        var parameterRatio = new Option<double?>("--param-ratio")
        {
            Description = "Low-rank: each matrix gets the rank whose factors hold this fraction of its parameters, r·(rows + columns) ≤ R·rows·columns (instead of --rank)",
        };
        var saesBeta = new Option<double?>("--saes-beta")
        {
            Description = "saes-svd: the weight of the full-precision output term (β ≥ 0; 0 is whitened SVD); default: ACES chooses it per matrix",
        };
        var method = new Option<string?>("--method") { Description = $"Quantization method ({string.Join(", ", ModelQuantizer.KnownMethods)}); default: the format's" };
        var keep = new Option<string[]>("--keep")
        {
            Description = "PATTERN keeps matching tensors in their source format, PATTERN=FORMAT stores them in FORMAT (glob on the name: * and ?; repeatable)",
            DefaultValueFactory = _ => [],
        };
        var calib = new Option<FileInfo?>("--calib")
        {
            Description = "Calibration text for calibrated methods (gptq, saes-svd): plain text, one paragraph a line; without it the model samples its own calibration text (slower, and said in the report)",
        };
        var calibWindows = new Option<int>("--calib-windows")
        {
            Description = "Calibration windows, taken at seeded random offsets of the text",
            DefaultValueFactory = _ => CalibrationOptions.DefaultWindows,
        };
        var calibContext = new Option<int>("--calib-ctx") { Description = "Tokens per calibration window", DefaultValueFactory = _ => CalibrationOptions.DefaultContext };
        var calibBackend = new Option<BackendKind>("--calib-backend")
        {
            Description = "Where calibration runs the model: vulkan or cpu",
            DefaultValueFactory = _ => BackendKind.Vulkan,
        };
        var calibSeed = new Option<int>("--calib-seed") { Description = "Seed of the window offsets (or of the sampled text)" };
        var actOrder = new Option<bool>("--act-order")
        {
            Description = "GPTQ: quantize columns by decreasing input energy, group grids fixed up front so the stored layout is unchanged (true or false)",
            DefaultValueFactory = _ => true,
        };
        var command = new Command("quantize", "Write a model as an .epack file in a weight format. A calibrated or budgeted run keeps each finished layer in OUT.partial/; after an interruption, the same command resumes from there")
        {
            input, output, format, targetBpw, groupSize, bits, planes, rank, parameterRatio, method, keep, calib, calibWindows, calibContext, calibBackend, calibSeed,
            actOrder, saesBeta,
        };
        command.SetAction(parse =>
        {
            string outputPath = parse.GetValue(output)!;
            if (!outputPath.EndsWith(EpackFile.Extension, StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"the output must be an {EpackFile.Extension} file, got '{outputPath}'");
            var calibration = new CalibrationOptions
            {
                TextFile = parse.GetValue(calib)?.FullName,
                Windows = parse.GetValue(calibWindows),
                Context = parse.GetValue(calibContext),
                Backend = parse.GetValue(calibBackend),
                Seed = parse.GetValue(calibSeed),
            };
            var gptq = new GptqOptions(ActOrder: parse.GetValue(actOrder));
            var request = (parse.GetValue(format), parse.GetValue(targetBpw)) switch
            {
                (null, null) => throw new ArgumentException("give --format FORMAT or --target-bpw BITS"),
                ({ } name, null) => ModelQuantizer.CreateRequest(name, parse.GetValue(groupSize), parse.GetValue(bits),
                    parse.GetValue(planes), parse.GetValue(rank), parse.GetValue(method), parse.GetValue(keep) ?? [], calibration, gptq,
                    parse.GetValue(parameterRatio), new SaesOptions(Beta: parse.GetValue(saesBeta))),
                (null, { } budget) => ModelQuantizer.CreateBudgetRequest(budget, parse.GetValue(method), parse.GetValue(keep) ?? [], calibration, gptq),
                _ => throw new ArgumentException("--format and --target-bpw exclude each other: a bit budget chooses the formats"),
            };
            using var source = ModelFile.Open(parse.GetValue(input)!);

            var clock = Stopwatch.StartNew();
            QuantizeResult result;
            using (var line = new ProgressLine())
            {
                var progress = line.Reporter<QuantizeProgress>(Describe);
                result = ModelQuantizer.Quantize(source, outputPath, request, CommandLine(), progress);
            }
            Print(result, outputPath, clock.Elapsed);
            return 0;
        });
        return command;
    }

    /// <summary>
    /// The progress bar's fraction and text. With calibration, a pass per layer dominates: the fraction counts passes
    /// (and the sampling of calibration text, when there is no file, as one more).
    /// </summary>
    private static (double Fraction, string Text) Describe(QuantizeProgress p)
    {
        if (p.Calibration is not { } c) return ((double)p.Done / Math.Max(p.Total, 1), $"{p.Done}/{p.Total} {p.Tensor}");
        double window = (double)c.Window / Math.Max(c.Windows, 1);
        return c.Sampling
            ? (window / (c.Layers + 1), $"sampling calibration text: window {c.Window}/{c.Windows}")
            : ((c.Layer + window) / c.Layers, $"calibrating layer {c.Layer + 1}/{c.Layers}: window {c.Window}/{c.Windows}");
    }

    private static void Print(QuantizeResult result, string outputPath, TimeSpan elapsed)
    {
        var inv = CultureInfo.InvariantCulture;
        var o = Console.Out;
        if (result.Calibration is { } calibration) o.WriteLine($"calibration: {calibration}");
        if (result.ResumedTensors > 0)
            o.WriteLine($"resumed: {result.ResumedTensors} tensors as an interrupted run of this command left them in {QuantizeCheckpoint.FolderOf(outputPath)}");
        o.WriteLine("| tensor | shape | format | bits/weight | rel. error |");
        o.WriteLine("| --- | --- | --- | ---: | ---: |");
        foreach (var tensor in result.Sizes.Weights)
        {
            var info = tensor.Info;
            o.WriteLine(string.Create(inv,
                $"| {info.Name} | {info.ShapeText} | {InspectCommand.FormatText(info)} | {tensor.BitsPerWeight:F3} | {result.RelativeErrors[info.Name]:G4} |"));
        }
        foreach (var companion in result.Sizes.Companions)
            o.WriteLine(string.Create(inv, $"companion {companion.Info.Name} {companion.Info.ShapeText} {InspectCommand.FormatText(companion.Info)}: {companion.Bytes} bytes"));
        var sizes = result.Sizes;
        o.WriteLine();
        o.WriteLine(string.Create(inv,
            $"total: {sizes.Weights.Count} tensors, {sizes.Parameters:N0} weights, {sizes.TotalBytes:N0} bytes of tensors, {sizes.BitsPerWeight:F3} bits per weight (companions counted); {outputPath}: {result.FileBytes:N0} bytes ({result.FileBytes / 1048576.0:F2} MiB) in {elapsed.TotalSeconds:F1} s"));
    }

    /// <summary>The command line as typed (arguments with spaces quoted), for the file's provenance.</summary>
    private static string CommandLine() =>
        string.Join(' ', Environment.GetCommandLineArgs().Skip(1).Prepend("engine").Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"\"{a}\"" : a));
}
