using System.Globalization;
using System.Reflection;
using Engine.Formats;
using Engine.Formats.Epack;
using Engine.Formats.Weights;
using Engine.Quantizers.Calibration;
using Engine.Quantizers.Methods;
using Engine.Runtime.Models;

namespace Engine.Quantizers;

/// <summary>
/// What <c>engine quantize</c> was asked for: the target format and parameters, the method and the overrides; for a
/// calibrated method, its encoder and the calibration's settings.
/// </summary>
public sealed record QuantizeRequest(WeightFormat Format, FormatParameters Parameters, string Method, IReadOnlyList<TensorOverride> Overrides)
{
    /// <summary>The target format's encoder for the method when it needs no calibration (the format's default otherwise).</summary>
    public IWeightEncoder Encoder { get; init; } = WeightEncoders.Get(Format.Type);

    public ICalibratedEncoder? Calibrated { get; init; }

    public GptqOptions Gptq { get; init; } = new();

    public SaesOptions Saes { get; init; } = new();

    /// <summary>
    /// Low-rank: each matrix's rank is the one whose factors hold this fraction of its parameter count
    /// (<see cref="LowRankEncoder.RankForParameterRatio"/>), where the parameters give no rank.
    /// </summary>
    public double? ParameterRatio { get; init; }

    public CalibrationOptions Calibration { get; init; } = new();

    /// <summary>
    /// A bit budget: each layer matrix gets the format of <see cref="BitAllocation.Candidates"/> that the allocation
    /// chooses so the layer matrices average at most this many bits per weight (Format is then only nominal).
    /// </summary>
    public double? TargetBitsPerWeight { get; init; }
}

/// <summary>
/// Quantization progress: <paramref name="Done"/> of <paramref name="Total"/> tensors, the one now being written; during
/// a calibration pass, where it is.
/// </summary>
public readonly record struct QuantizeProgress(int Done, int Total, string Tensor, CalibrationProgress? Calibration = null);

/// <summary>
/// The outcome: the sizes measured from the bytes written (<see cref="StoredSizes"/>), the relative Frobenius error
/// ||W - decode(encode(W))||_F / ||W||_F of every tensor (0 for tensors copied as they were), the file's length,
/// what calibration ran on (null without calibration), and how many tensors came from an interrupted run's checkpoint.
/// </summary>
public sealed record QuantizeResult(StoredSizes Sizes, IReadOnlyDictionary<string, double> RelativeErrors, long FileBytes, string? Calibration = null,
    int ResumedTensors = 0);

/// <summary>
/// Writes a model as an .epack file in a chosen weight format, tensor by tensor (one tensor in memory at a time).
/// Which format each tensor gets: the first matching override; else, by its role in the architecture
/// (<see cref="ArchitectureRegistry.TensorNamesOf"/>), tensors that are not 2-D matrices, and MoE routers (a few rows
/// that pick experts, kept f32 as llama.cpp does), are stored as f32; the embedding table, output head and a vision
/// model's projector stay at q8 when the target is below 8 bits (f16 when there is no q8); every other matrix gets
/// the target. A tensor already stored in the format it would get is copied as it is, and so
/// are the tensors it references.
/// </summary>
public static class ModelQuantizer
{
    /// <summary>The methods of DESIGN.md; each format implements its default one for now.</summary>
    public static IReadOnlyList<string> KnownMethods { get; } =
        ["rtn", "gptq", "pcdvq", "svd", "saes-svd", "sefp", "mobie", "moequant", "rwkvquant", "mambaquant", "mquant"];

    /// <summary>
    /// Checks and assembles a request: a known format with an encoder, parameters the format accepts (the format's
    /// defaults where a value is null), its default method, and parsed overrides. Problems are ArgumentExceptions or,
    /// for parameters, the format's own InvalidDataException.
    /// </summary>
    public static QuantizeRequest CreateRequest(string formatName, int? groupSize, int? bits, int? planes, int? rank, string? method, IEnumerable<string> overrides,
        CalibrationOptions? calibration = null, GptqOptions? gptq = null, double? parameterRatio = null, SaesOptions? saes = null)
    {
        ArgumentNullException.ThrowIfNull(formatName);
        if (!WeightTypes.TryGet(formatName, out var format))
            throw new ArgumentException($"unknown format '{formatName}' (known: {string.Join(", ", WeightTypes.All.Select(f => f.Name))})");
        var encoder = Encoder(format);
        foreach (var (flag, value) in new[] { ("--group-size", groupSize), ("--bits", bits), ("--planes", planes), ("--rank", rank) })
        {
            if (value <= 0) throw new ArgumentException($"{flag} must be positive, got {value}");
        }
        var defaults = format.DefaultParameters;
        var parameters = defaults with
        {
            GroupSize = groupSize ?? defaults.GroupSize,
            Bits = bits ?? defaults.Bits,
            Planes = planes ?? defaults.Planes,
            Rank = rank ?? defaults.Rank,
        };
        format.Validate(parameters);
        if (parameterRatio is double ratio)
        {
            if (format is not LowRankFormat) throw new ArgumentException($"--param-ratio sets a low-rank rank; {format.Name} has none");
            if (rank is not null) throw new ArgumentException("--rank and --param-ratio exclude each other");
            if (!(ratio > 0)) throw new ArgumentException($"--param-ratio must be positive, got {ratio}");
        }
        if (saes?.Beta is < 0) throw new ArgumentException($"--saes-beta must not be negative, got {saes.Beta}");

        method ??= encoder.Method;
        var calibrated = CalibratedEncoders.Find(format, method, gptq, saes);
        var uncalibrated = WeightEncoders.Find(format.Type, method);
        if (uncalibrated is null && calibrated is null)
        {
            string has = string.Join(", ", WeightEncoders.MethodsOf(format.Type).Concat(CalibratedEncoders.MethodsOf(format)));
            throw new ArgumentException(KnownMethods.Contains(method, StringComparer.OrdinalIgnoreCase)
                ? $"method '{method}' is not implemented for {format.Name}; {format.Name} has {has}"
                : $"unknown method '{method}' (known: {string.Join(", ", KnownMethods)}; {format.Name} has {has})");
        }
        if (saes?.Beta is not null && calibrated is not SaesSvd) throw new ArgumentException("--saes-beta is an option of --method saes-svd");
        calibration ??= new CalibrationOptions();
        calibration.Validate();
        var parsed = overrides.Select(TensorOverride.Parse).ToList();
        foreach (var entry in parsed)
        {
            if (entry.Format is { } target) Encoder(target);
        }
        return new QuantizeRequest(format, parameters, calibrated?.Method ?? uncalibrated!.Method, parsed)
        {
            Encoder = uncalibrated ?? encoder, Calibrated = calibrated, Calibration = calibration, Gptq = gptq ?? new GptqOptions(),
            Saes = saes ?? new SaesOptions(), ParameterRatio = parameterRatio,
        };
    }

    /// <summary>
    /// A request for a bit budget (<c>--target-bpw</c>): the layer matrices get the candidate formats the allocation
    /// picks, quantized with GPTQ (or round-to-nearest with <paramref name="method"/> rtn); the rest as for q4.
    /// </summary>
    public static QuantizeRequest CreateBudgetRequest(double bitsPerWeight, string? method, IEnumerable<string> overrides, CalibrationOptions? calibration = null, GptqOptions? gptq = null)
    {
        double[] range = [.. BitAllocation.Candidates.Select(c => c.Format.BitsPerWeight(c.Parameters))];
        if (!(bitsPerWeight >= range.Min() && bitsPerWeight <= range.Max()))
            throw new ArgumentException($"--target-bpw must be between {range.Min():0.###} and {range.Max():0.###} (the candidate formats' range), got {bitsPerWeight}");
        var request = CreateRequest("q4", null, null, null, null, method ?? "gptq", overrides, calibration, gptq);
        return request with { TargetBitsPerWeight = bitsPerWeight };
    }

    /// <summary>
    /// Writes <paramref name="source"/> to <paramref name="outputPath"/> as <paramref name="request"/> says, through a
    /// temporary file that replaces the output only once complete.
    /// </summary>
    /// <param name="commandLine">How the tool was run, for the provenance.</param>
    public static QuantizeResult Quantize(ModelFile source, string outputPath, QuantizeRequest request, string commandLine, IProgress<QuantizeProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(request);
        var tensors = source.Tensors;
        var companions = tensors.Tensors.SelectMany(t => t.References).ToHashSet(StringComparer.Ordinal);
        var weights = tensors.Tensors.Where(t => !companions.Contains(t.Name)).ToList();
        foreach (var entry in request.Overrides)
        {
            if (!weights.Any(t => entry.Matches(t.Name)))
                throw new ArgumentException($"--keep {entry}: no tensor of {source.Path} matches");
        }
        var embedding = EmbeddingChoice(request);
        var names = ArchitectureRegistry.TensorNamesOf(source.Config.Architecture);
        Encoder(embedding.Format);

        var (metadata, files) = SourceMetadata.Read(source);
        var errors = new Dictionary<string, double>(StringComparer.Ordinal);
        using var writer = EpackWriter.Create(outputPath);
        // Calibrated and budgeted runs take long enough to be worth resuming after an interruption.
        using var checkpoint = request.Calibrated is not null || request.TargetBitsPerWeight is not null
            ? QuantizeCheckpoint.Open(outputPath, RunDescription(request, files), metadata)
            : null;
        Dictionary<string, (WeightFormat, FormatParameters)> allocated = [];
        if (request.TargetBitsPerWeight is double target)
        {
            allocated = checkpoint!.Allocation() ?? Allocate(source, weights, names, request, embedding, target, progress);
            checkpoint.SaveAllocation(allocated);
        }
        LayerCalibrator? calibrator = null;
        if (request.Calibrated is not null)
        {
            // Calibration passes report where they are, with the tensor count reached so far.
            var outer = progress;
            int done = 0;
            calibrator = new LayerCalibrator(source, request.Calibration,
                outer is null ? null : new Callback<CalibrationProgress>(p => outer.Report(new QuantizeProgress(done, weights.Count, "", p))),
                request.Calibrated.NeedsCrossStatistics);
            progress = outer is null ? null : new Callback<QuantizeProgress>(p =>
            {
                done = p.Done;
                outer.Report(p);
            });
            // Layer by layer, each calibrated with the layers before it quantized; tensors in no layer first.
            weights = [.. weights.Select((t, i) => (t, i)).OrderBy(p => calibrator.LayerOf(p.t.Name) ?? -1).ThenBy(p => p.i).Select(p => p.t)];
        }
        int? previousLayer = null;
        for (int i = 0; i < weights.Count; i++)
        {
            var info = weights[i];
            progress?.Report(new QuantizeProgress(i, weights.Count, info.Name));
            int? layer = names.LayerOf(info.Name);
            if (layer != previousLayer) checkpoint?.Flush();
            previousLayer = layer;
            var choice = allocated.TryGetValue(info.Name, out var budgeted) ? budgeted : Choose(info, names, request, embedding);
            if (choice is not var (format, parameters) || (format.Type == info.Type && parameters == info.Parameters))
            {
                CopyWithReferences(tensors, info.Name, writer);
                errors[info.Name] = 0;
                continue;
            }
            if (info.Rows > int.MaxValue || info.Columns > int.MaxValue)
                throw new InvalidDataException($"tensor '{info.Name}' {info.ShapeText} is too large to encode");
            float[] values = tensors.ReadFloat32(info.Name);
            var method = calibrator is not null && calibrator.LayerOf(info.Name) is not null && (format == request.Format || allocated.ContainsKey(info.Name))
                ? CalibratedEncoders.Find(format, allocated.ContainsKey(info.Name) ? CalibratedEncoders.MethodsOf(format).FirstOrDefault() ?? "" : request.Method, request.Gptq, request.Saes)
                : null;
            var encoded = checkpoint?.Finished(info.Name);
            if (encoded is null)
            {
                encoded = Encode(info, values, format == request.Format ? request.Encoder : Encoder(format), parameters, method is null ? null : (method, calibrator!));
                checkpoint?.Add(encoded);
            }
            calibrator?.Quantized(encoded);
            errors[info.Name] = WriteAndMeasure(writer, values, format, encoded);
        }
        progress?.Report(new QuantizeProgress(weights.Count, weights.Count, ""));

        var provenance = new EpackProvenance(
            Path.GetFullPath(source.Path),
            [.. files.Select(f => new EpackSourceFile(f, new FileInfo(f).Length))],
            typeof(ModelQuantizer).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown",
            DateTimeOffset.UtcNow,
            commandLine);
        long fileBytes = writer.Complete(metadata with
        {
            Recipe = new EpackRecipe(request.TargetBitsPerWeight is double bpw ? string.Create(CultureInfo.InvariantCulture, $"target-bpw {bpw}") : request.Format.Name,
                request.Parameters, request.Method, [.. request.Overrides.Select(o => o.Text)]),
            Provenance = provenance,
        });
        int resumed = checkpoint?.Resumed ?? 0;
        checkpoint?.Delete();
        var lengths = writer.Entries.ToDictionary(e => e.Info.Name, e => e.Length, StringComparer.Ordinal);
        var sizes = StoredSizes.Of([.. writer.Entries.Select(e => e.Info)], name => lengths[name]);
        return new QuantizeResult(sizes, errors, fileBytes, calibrator?.Description, resumed);
    }

    /// <summary>
    /// Everything that decides a run's output, for <see cref="QuantizeCheckpoint"/>: the engine version, the source
    /// and calibration files (path, length, time written) and the request's settings.
    /// </summary>
    private static string RunDescription(QuantizeRequest request, IReadOnlyList<string> sourceFiles)
    {
        static string FileText(string path) => new FileInfo(path) is var file && file.Exists
            ? string.Create(CultureInfo.InvariantCulture, $"{file.FullName} {file.Length} {file.LastWriteTimeUtc:O}")
            : path;
        var lines = new List<string>
        {
            typeof(ModelQuantizer).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown",
        };
        lines.AddRange(sourceFiles.Select(FileText));
        lines.Add(string.Create(CultureInfo.InvariantCulture,
            $"{request.Format.Name} {request.Parameters} method={request.Method} target-bpw={request.TargetBitsPerWeight} param-ratio={request.ParameterRatio}"));
        lines.Add("keep " + string.Join(" ", request.Overrides.Select(o => o.Text)));
        lines.Add((request.Calibration with { TextFile = request.Calibration.TextFile is { } text ? FileText(text) : null }).ToString());
        lines.Add(request.Gptq.ToString());
        lines.Add(request.Saes.ToString());
        return string.Join("\n", lines) + "\n";
    }

    /// <summary>
    /// The bit budget's choice for every layer matrix that would get the target format: a calibration pass per layer
    /// over the unquantized model gives each matrix's input statistics, every candidate format's round-to-nearest
    /// encoding its layer error on those statistics, and <see cref="BitAllocation"/> the choice. Layer errors are
    /// not comparable across matrices (a matrix's output passes through different layers to the logits), so each
    /// matrix's are scaled by what they cost the output: the KL divergence of the model with that matrix alone at
    /// the candidate nearest the target, over its layer error there (first order: KL grows with the output error).
    /// </summary>
    private static Dictionary<string, (WeightFormat, FormatParameters)> Allocate(ModelFile source, IReadOnlyList<TensorInfo> weights, TensorNames names,
        QuantizeRequest request, (WeightFormat Format, FormatParameters Parameters) embedding, double target, IProgress<QuantizeProgress>? progress)
    {
        var calibrator = new LayerCalibrator(source, request.Calibration,
            progress is null ? null : new Callback<CalibrationProgress>(p => progress.Report(new QuantizeProgress(0, weights.Count, "", p))));
        var matrices = weights
            .Where(t => names.LayerOf(t.Name) is not null && Choose(t, names, request, embedding) is var (format, _) && format == request.Format)
            .OrderBy(t => names.LayerOf(t.Name))
            .ToList();
        var measured = new List<(TensorInfo Info, long Elements, IReadOnlyList<StorageChoice> Candidates)>();
        var sharedBits = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var info in matrices)
        {
            int rows = (int)info.Rows, columns = (int)info.Columns;
            // A product with no statistics (never reached, or reading the matrix transposed) is left to the target format.
            if (calibrator.StatisticsOf(info.Name, columns) is not { } statistics) continue;
            progress?.Report(new QuantizeProgress(measured.Count, matrices.Count, $"sensitivity of {info.Name}"));
            var h = statistics.Mean();
            float[] values = source.Tensors.ReadFloat32(info.Name);
            var encoded = BitAllocation.Candidates.Select(c => Encoder(c.Format).Encode(info.Name, values, rows, columns, c.Parameters)).ToList();
            var candidates = BitAllocation.Candidates.Select((c, i) =>
            {
                var decoded = new float[values.Length];
                using (var companions = new InMemoryTensors(encoded[i].Companions))
                    c.Format.Decode(encoded[i].Info, encoded[i].Data, decoded, companions);
                // A companion named by the parameters (a codebook) is shared by every matrix: counted once, by the allocation.
                var shared = encoded[i].Companions.Where(t => t.Info.Name == c.Parameters.Reference).ToList();
                foreach (var t in shared) sharedBits[t.Info.Name] = 8L * t.Data.Length;
                long bits = 8L * (encoded[i].Data.Length + encoded[i].Companions.Except(shared).Sum(t => (long)t.Data.Length));
                return new StorageChoice(c.Format, c.Parameters, bits, Gptq.LayerError(values, decoded, rows, columns, h), [.. shared.Select(t => t.Info.Name)]);
            }).ToList();
            long elements = (long)rows * columns;
            int probe = candidates.Select((c, i) => (c, i)).MinBy(p => Math.Abs((double)p.c.Bits / elements - target)).i;
            double weight = candidates[probe].Error > 0 ? calibrator.KlDivergenceWith(encoded[probe]) / candidates[probe].Error : 0;
            measured.Add((info, elements, [.. candidates.Select(c => c with { Error = weight * c.Error })]));
        }
        var chosen = BitAllocation.Choose([.. measured.Select(m => (m.Elements, m.Candidates))], target, sharedBits);
        return measured.Select((m, i) => (m.Info.Name, (chosen[i].Format, chosen[i].Parameters))).ToDictionary(p => p.Name, p => p.Item2, StringComparer.Ordinal);
    }

    /// <summary>The format and parameters a weight tensor gets, or null to keep it as the source stores it.</summary>
    private static (WeightFormat Format, FormatParameters Parameters)? Choose(TensorInfo info, TensorNames names, QuantizeRequest request, (WeightFormat Format, FormatParameters Parameters) embedding)
    {
        if (request.Overrides.FirstOrDefault(o => o.Matches(info.Name)) is { } match)
        {
            if (match.Format is not { } format) return null;
            return (format, format == request.Format ? TargetParameters(info, request) : format.DefaultParameters);
        }
        if (info.Shape.Length != 2) return (FloatFormat.F32, default);
        return names.RoleOf(info.Name) switch
        {
            TensorRole.Router => (FloatFormat.F32, default),
            TensorRole.Embedding or TensorRole.Head or TensorRole.Projector => embedding,
            _ => (request.Format, TargetParameters(info, request)),
        };
    }

    /// <summary>The request's parameters for a matrix of the target format: with the rank its parameter ratio gives, if it has one.</summary>
    private static FormatParameters TargetParameters(TensorInfo info, QuantizeRequest request) =>
        request.ParameterRatio is double ratio && request.Parameters.Rank == 0
            ? request.Parameters with { Rank = LowRankEncoder.RankForParameterRatio((int)info.Rows, (int)info.Columns, ratio) }
            : request.Parameters;

    /// <summary>The embedding table's and output head's format: the target at 8 bits or more, else q8 (f16 without q8).</summary>
    private static (WeightFormat Format, FormatParameters Parameters) EmbeddingChoice(QuantizeRequest request)
    {
        if (request.Format.BitsPerWeight(request.Parameters) >= 8) return (request.Format, request.Parameters);
        if (WeightTypes.TryGet("q8", out var q8)) return (q8, q8.DefaultParameters);
        return (FloatFormat.F16, default);
    }

    /// <summary>
    /// Encodes a source tensor with a calibrated method on the statistics its input had in the partly quantized
    /// model, or with the format's default method (no calibrated method, or no statistics for this tensor).
    /// </summary>
    private static EncodedTensor Encode(TensorInfo info, float[] values, IWeightEncoder encoder, FormatParameters parameters,
        (ICalibratedEncoder Method, LayerCalibrator Calibrator)? calibrated)
    {
        int rows = (int)info.Rows, columns = (int)info.Columns;
        var encoded = calibrated is var (method, calibrator) && calibrator.StatisticsOf(info.Name, columns) is { } statistics
            ? method.Encode(info.Name, values, rows, columns, parameters, statistics)
            : encoder.Encode(info.Name, values, rows, columns, parameters);
        // Encoders see a matrix; the tensor keeps its own shape (same rows and columns, so the same layout).
        return encoded with { Tensor = encoded.Tensor with { Info = encoded.Info with { Shape = info.Shape } } };
    }

    /// <summary>Writes an encoded tensor with its companions; returns its relative Frobenius error against the source.</summary>
    private static double WriteAndMeasure(EpackWriter writer, float[] values, WeightFormat format, EncodedTensor encoded)
    {
        foreach (var companion in encoded.Companions) writer.Add(companion.Info, companion.Data);
        writer.Add(encoded.Info, encoded.Data);

        var decoded = new float[values.Length];
        using (var shared = new InMemoryTensors(encoded.Companions))
            format.Decode(encoded.Info, encoded.Data, decoded, shared);
        double difference = 0, norm = 0;
        for (int i = 0; i < values.Length; i++)
        {
            double d = (double)values[i] - decoded[i];
            difference += d * d;
            norm += (double)values[i] * values[i];
        }
        return norm > 0 ? Math.Sqrt(difference / norm) : difference > 0 ? double.PositiveInfinity : 0;
    }

    private sealed class Callback<T>(Action<T> action) : IProgress<T>
    {
        public void Report(T value) => action(value);
    }

    /// <summary>Copies a tensor's stored bytes and those of every tensor it references.</summary>
    private static void CopyWithReferences(ITensorSource tensors, string name, EpackWriter writer)
    {
        var pending = new Stack<string>([name]);
        while (pending.TryPop(out string? current))
        {
            if (writer.Contains(current)) continue;
            var info = tensors.Require(current);
            writer.Add(info, tensors.ReadBytes(current));
            foreach (string reference in info.References) pending.Push(reference);
        }
    }

    private static IWeightEncoder Encoder(WeightFormat format)
    {
        try
        {
            return WeightEncoders.Get(format.Type);
        }
        catch (NotSupportedException e)
        {
            throw new ArgumentException($"{format.Name} cannot be written yet: {e.Message}", e);
        }
    }
}
