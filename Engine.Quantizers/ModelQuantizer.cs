using System.Reflection;
using Engine.Formats;
using Engine.Formats.Epack;
using Engine.Formats.Weights;

namespace Engine.Quantizers;

/// <summary>What <c>engine quantize</c> was asked for: the target format and parameters, the method and the overrides.</summary>
public sealed record QuantizeRequest(WeightFormat Format, FormatParameters Parameters, string Method, IReadOnlyList<TensorOverride> Overrides);

/// <summary>Quantization progress: <paramref name="Done"/> of <paramref name="Total"/> tensors, the one now being written.</summary>
public readonly record struct QuantizeProgress(int Done, int Total, string Tensor);

/// <summary>
/// The outcome: the sizes measured from the bytes written (<see cref="StoredSizes"/>), the relative Frobenius error
/// ||W - decode(encode(W))||_F / ||W||_F of every tensor (0 for tensors copied as they were), the file's length.
/// </summary>
public sealed record QuantizeResult(StoredSizes Sizes, IReadOnlyDictionary<string, double> RelativeErrors, long FileBytes);

/// <summary>
/// Writes a model as an .epack file in a chosen weight format, tensor by tensor (one tensor in memory at a time).
/// Which format each tensor gets: the first matching override; else tensors that are not 2-D matrices, and MoE
/// routers (a few rows that pick experts, kept f32 as llama.cpp does), are stored as f32; the embedding table, output
/// head and a vision model's projector stay at q8 when the target is below 8 bits (f16 when there is no q8); every
/// other matrix gets the target. A tensor already stored in the format it would get is copied as it is, and so
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
    public static QuantizeRequest CreateRequest(string formatName, int? groupSize, int? bits, int? planes, int? rank, string? method, IEnumerable<string> overrides)
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

        method ??= encoder.Method;
        if (!string.Equals(method, encoder.Method, StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException(KnownMethods.Contains(method, StringComparer.OrdinalIgnoreCase)
                ? $"method '{method}' is not implemented yet; {format.Name} has {encoder.Method}"
                : $"unknown method '{method}' (known: {string.Join(", ", KnownMethods)}; {format.Name} has {encoder.Method})");
        }
        var parsed = overrides.Select(TensorOverride.Parse).ToList();
        foreach (var entry in parsed)
        {
            if (entry.Format is { } target) Encoder(target);
        }
        return new QuantizeRequest(format, parameters, encoder.Method, parsed);
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
        Encoder(embedding.Format);

        var (metadata, files) = SourceMetadata.Read(source);
        var errors = new Dictionary<string, double>(StringComparer.Ordinal);
        using var writer = EpackWriter.Create(outputPath);
        for (int i = 0; i < weights.Count; i++)
        {
            var info = weights[i];
            progress?.Report(new QuantizeProgress(i, weights.Count, info.Name));
            var choice = Choose(info, request, embedding);
            if (choice is not var (format, parameters) || (format.Type == info.Type && parameters == info.Parameters))
            {
                CopyWithReferences(tensors, info.Name, writer);
                errors[info.Name] = 0;
                continue;
            }
            errors[info.Name] = EncodeInto(writer, tensors, info, format, parameters);
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
            Recipe = new EpackRecipe(request.Format.Name, request.Parameters, request.Method, [.. request.Overrides.Select(o => o.Text)]),
            Provenance = provenance,
        });
        var lengths = writer.Entries.ToDictionary(e => e.Info.Name, e => e.Length, StringComparer.Ordinal);
        var sizes = StoredSizes.Of([.. writer.Entries.Select(e => e.Info)], name => lengths[name]);
        return new QuantizeResult(sizes, errors, fileBytes);
    }

    /// <summary>The format and parameters a weight tensor gets, or null to keep it as the source stores it.</summary>
    private static (WeightFormat Format, FormatParameters Parameters)? Choose(TensorInfo info, QuantizeRequest request, (WeightFormat Format, FormatParameters Parameters) embedding)
    {
        if (request.Overrides.FirstOrDefault(o => o.Matches(info.Name)) is { } match)
        {
            if (match.Format is not { } format) return null;
            return (format, format == request.Format ? request.Parameters : format.DefaultParameters);
        }
        if (info.Shape.Length != 2 || IsRouter(info.Name)) return (FloatFormat.F32, default);
        if (IsEmbeddingOrHead(info.Name)) return embedding;
        return (request.Format, request.Parameters);
    }

    /// <summary>A mixture-of-experts router (Mixtral, Qwen-MoE, DeepSeek) or Qwen2-MoE's shared-expert gate.</summary>
    private static bool IsRouter(string name) =>
        name.EndsWith(".mlp.gate.weight", StringComparison.Ordinal) || name.EndsWith(".block_sparse_moe.gate.weight", StringComparison.Ordinal)
        || name.EndsWith(".shared_expert_gate.weight", StringComparison.Ordinal);

    /// <summary>
    /// The token embedding and output head under each family's names (Llama's embed_tokens/lm_head, Mamba's and
    /// RWKV-4's embeddings, BlinkDL's emb/head), and LLaVA's projector into the language model.
    /// </summary>
    private static bool IsEmbeddingOrHead(string name) =>
        name.Contains("embed_tokens", StringComparison.Ordinal) || name.Contains("lm_head", StringComparison.Ordinal)
        || name.EndsWith("embeddings.weight", StringComparison.Ordinal) || name is "emb.weight" or "head.weight"
        || name.StartsWith("multi_modal_projector.", StringComparison.Ordinal);

    /// <summary>The embedding table's and output head's format: the target at 8 bits or more, else q8 (f16 without q8).</summary>
    private static (WeightFormat Format, FormatParameters Parameters) EmbeddingChoice(QuantizeRequest request)
    {
        if (request.Format.BitsPerWeight(request.Parameters) >= 8) return (request.Format, request.Parameters);
        if (WeightTypes.TryGet("q8", out var q8)) return (q8, q8.DefaultParameters);
        return (FloatFormat.F16, default);
    }

    /// <summary>Decodes a source tensor, encodes it, writes it with its companions; returns the relative Frobenius error.</summary>
    private static double EncodeInto(EpackWriter writer, ITensorSource tensors, TensorInfo info, WeightFormat format, FormatParameters parameters)
    {
        if (info.Rows > int.MaxValue || info.Columns > int.MaxValue)
            throw new InvalidDataException($"tensor '{info.Name}' {info.ShapeText} is too large to encode");
        float[] values = tensors.ReadFloat32(info.Name);
        var encoded = Encoder(format).Encode(info.Name, values, (int)info.Rows, (int)info.Columns, parameters);
        // Encoders see a matrix; the tensor keeps its own shape (same rows and columns, so the same layout).
        var stored = encoded.Info with { Shape = info.Shape };
        foreach (var companion in encoded.Companions) writer.Add(companion.Info, companion.Data);
        writer.Add(stored, encoded.Data);

        var decoded = new float[values.Length];
        using (var shared = new InMemoryTensors(encoded.Companions))
            format.Decode(stored, encoded.Data, decoded, shared);
        double difference = 0, norm = 0;
        for (int i = 0; i < values.Length; i++)
        {
            double d = (double)values[i] - decoded[i];
            difference += d * d;
            norm += (double)values[i] * values[i];
        }
        return norm > 0 ? Math.Sqrt(difference / norm) : difference > 0 ? double.PositiveInfinity : 0;
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
