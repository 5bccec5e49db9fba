using System.Globalization;
using System.Text;
using System.Text.Json;
using Engine.Formats;
using Engine.Formats.Epack;

namespace Engine.Quantizers;

/// <summary>
/// What a long (calibrated or budgeted) quantization has finished, kept beside its output in <c>OUT.partial/</c> so
/// that running the same command again after an interruption picks up where it stopped: the bit budget's choice
/// (<c>allocation.json</c>), and each finished layer's encoded tensors as a small .epack (<c>part-NNNN.epack</c>,
/// each complete or absent: written under a temporary name and renamed). Calibration is deterministic, so a resumed
/// run writes the bytes an uninterrupted one would. Only a checkpoint of the same request on the same source files
/// (<c>run.txt</c>) is resumed; any other is refused rather than mixed in. Deleted once the output is complete.
/// </summary>
public sealed class QuantizeCheckpoint : IDisposable
{
    private const string RunFile = "run.txt";
    private const string AllocationFile = "allocation.json";

    private readonly string _folder;
    private readonly EpackMetadata _metadata;
    private readonly List<EpackFile> _parts = [];
    private readonly Dictionary<string, EpackFile> _partOf = new(StringComparer.Ordinal);
    private readonly List<EncodedTensor> _pending = [];

    private QuantizeCheckpoint(string folder, EpackMetadata metadata)
    {
        _folder = folder;
        _metadata = metadata;
    }

    /// <summary>The checkpoint folder of an output path.</summary>
    public static string FolderOf(string outputPath) => Path.GetFullPath(outputPath) + ".partial";

    /// <summary>Tensors that a previous run finished and this one took as they were (<see cref="Finished"/>).</summary>
    public int Resumed { get; private set; }

    /// <summary>
    /// Opens the checkpoint of <paramref name="outputPath"/>, or starts one. Throws when the folder holds a checkpoint
    /// of a different run (<paramref name="run"/> describes this one).
    /// </summary>
    public static QuantizeCheckpoint Open(string outputPath, string run, EpackMetadata metadata)
    {
        string folder = FolderOf(outputPath);
        var checkpoint = new QuantizeCheckpoint(folder, metadata);
        string runPath = Path.Combine(folder, RunFile);
        if (Directory.Exists(folder) && File.Exists(runPath))
        {
            if (File.ReadAllText(runPath) != run)
                throw new IOException($"{folder} holds the checkpoint of a different quantization (another command, source or engine version); " +
                    "run that command again to finish it, or delete the folder to start over");
            try
            {
                foreach (string part in Directory.EnumerateFiles(folder, "part-*.epack").Order(StringComparer.Ordinal))
                    checkpoint.Load(EpackFile.Open(part));
            }
            catch
            {
                checkpoint.Dispose();
                throw;
            }
            return checkpoint;
        }
        Directory.CreateDirectory(folder);
        File.WriteAllText(runPath, run);
        return checkpoint;
    }

    private void Load(EpackFile part)
    {
        _parts.Add(part);
        foreach (var info in part.Tensors) _partOf[info.Name] = part;
    }

    /// <summary>A tensor a previous run finished, with its companions; null when it did not.</summary>
    public EncodedTensor? Finished(string name)
    {
        if (!_partOf.TryGetValue(name, out var part)) return null;
        var companions = new List<StoredBytes>();
        var pending = new Stack<string>(part.Require(name).References);
        while (pending.TryPop(out string? reference))
        {
            if (companions.Any(c => c.Info.Name == reference)) continue;
            var info = part.Require(reference);
            companions.Add(new StoredBytes(info, part.ReadBytes(reference)));
            foreach (string next in info.References) pending.Push(next);
        }
        Resumed++;
        return new EncodedTensor(new StoredBytes(part.Require(name), part.ReadBytes(name)), companions);
    }

    /// <summary>The bit budget's choice a previous run saved; null when none.</summary>
    public Dictionary<string, (WeightFormat, FormatParameters)>? Allocation()
    {
        string path = Path.Combine(_folder, AllocationFile);
        if (!File.Exists(path)) return null;
        var entries = JsonSerializer.Deserialize<List<AllocationEntry>>(File.ReadAllText(path))
            ?? throw new InvalidDataException($"{path} is empty");
        return entries.ToDictionary(e => e.Name, e => (
            WeightTypes.TryGet(e.Format, out var format) ? format : throw new InvalidDataException($"{path}: unknown format '{e.Format}'"),
            new FormatParameters(e.GroupSize, e.Bits, e.Planes, e.Rank, e.Reference)), StringComparer.Ordinal);
    }

    public void SaveAllocation(IReadOnlyDictionary<string, (WeightFormat Format, FormatParameters Parameters)> allocation)
    {
        var entries = allocation.Select(a => new AllocationEntry(a.Key, a.Value.Format.Name, a.Value.Parameters.GroupSize,
            a.Value.Parameters.Bits, a.Value.Parameters.Planes, a.Value.Parameters.Rank, a.Value.Parameters.Reference)).ToList();
        WriteAtomically(Path.Combine(_folder, AllocationFile), Encoding.UTF8.GetBytes(JsonSerializer.Serialize(entries)));
    }

    /// <summary>A tensor this run encoded; kept until <see cref="Flush"/>.</summary>
    public void Add(EncodedTensor encoded) => _pending.Add(encoded);

    /// <summary>Writes the tensors added since the last flush as the next part (a finished layer).</summary>
    public void Flush()
    {
        if (_pending.Count == 0) return;
        string path = Path.Combine(_folder, string.Create(CultureInfo.InvariantCulture, $"part-{_parts.Count:D4}.epack"));
        using (var writer = EpackWriter.Create(path))
        {
            foreach (var encoded in _pending)
            {
                foreach (var companion in encoded.Companions) writer.Add(companion.Info, companion.Data);
                writer.Add(encoded.Info, encoded.Data);
            }
            writer.Complete(_metadata);
        }
        _pending.Clear();
        Load(EpackFile.Open(path));
    }

    /// <summary>The output is complete: the checkpoint goes.</summary>
    public void Delete()
    {
        Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    public void Dispose()
    {
        foreach (var part in _parts) part.Dispose();
        _parts.Clear();
    }

    private static void WriteAtomically(string path, byte[] bytes)
    {
        string temporary = path + ".tmp";
        File.WriteAllBytes(temporary, bytes);
        File.Move(temporary, path, overwrite: true);
    }

    private sealed record AllocationEntry(string Name, string Format, int GroupSize, int Bits, int Planes, int Rank, string? Reference);
}
