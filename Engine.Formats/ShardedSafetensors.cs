using System.Text.Json;

namespace Engine.Formats;

/// <summary>
/// A checkpoint split over several <c>.safetensors</c> shards, described by <c>model.safetensors.index.json</c>
/// (<c>{"weight_map": {tensor: shard file}}</c>). Each shard is opened once; lookups are routed by tensor name.
/// Only the tensors the index lists are exposed, in index order.
/// </summary>
public sealed class ShardedSafetensors : ITensorSource
{
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly SafetensorsFile[] _shards;
    private readonly Dictionary<string, SafetensorsFile> _route;
    private readonly TensorInfo[] _tensors;

    private ShardedSafetensors(string path, SafetensorsFile[] shards, Dictionary<string, SafetensorsFile> route,
        TensorInfo[] tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        _shards = shards;
        _route = route;
        _tensors = tensors;
        Metadata = metadata;
    }

    /// <summary>The path of the index file.</summary>
    public string Path { get; }

    /// <summary>The shards, in the order the index first names them.</summary>
    public IReadOnlyList<SafetensorsFile> Shards => _shards;

    /// <summary>The index's <c>metadata</c> entries (for example <c>total_size</c>) as text; empty when absent.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    /// <summary>Opens the index file <paramref name="indexPath"/> and every shard it names (shards sit beside the index).</summary>
    public static ShardedSafetensors Open(string indexPath)
    {
        ArgumentNullException.ThrowIfNull(indexPath);
        if (!File.Exists(indexPath))
            throw new FileNotFoundException($"safetensors index '{indexPath}' does not exist", indexPath);

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{indexPath}: not valid JSON: {e.Message}", e);
        }

        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var entries = new List<(string Tensor, string Shard)>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{indexPath}: must be a JSON object, found {root.ValueKind}");
            if (!root.TryGetProperty("weight_map", out var weightMap) || weightMap.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{indexPath}: has no 'weight_map' object");
            if (root.TryGetProperty("metadata", out var meta) && meta.ValueKind == JsonValueKind.Object)
                foreach (var entry in meta.EnumerateObject())
                    metadata[entry.Name] = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString()! : entry.Value.GetRawText();

            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var entry in weightMap.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"{indexPath}: weight_map entry '{entry.Name}' must name a shard file, found {entry.Value.ValueKind}");
                string shard = entry.Value.GetString()!;
                if (shard.Length == 0 || System.IO.Path.GetFileName(shard) != shard || shard is "." or "..")
                    throw new InvalidDataException(
                        $"{indexPath}: weight_map entry '{entry.Name}' names shard '{shard}', which is not a plain file name beside the index");
                if (!seen.Add(entry.Name))
                    throw new InvalidDataException($"{indexPath}: tensor '{entry.Name}' appears twice in weight_map");
                entries.Add((entry.Name, shard));
            }
        }
        if (entries.Count == 0)
            throw new InvalidDataException($"{indexPath}: weight_map is empty");

        var opened = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var shards = new List<SafetensorsFile>();
        try
        {
            var route = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            var tensors = new TensorInfo[entries.Count];
            for (int i = 0; i < entries.Count; i++)
            {
                var (tensor, shardName) = entries[i];
                if (!opened.TryGetValue(shardName, out var shard))
                {
                    string shardPath = System.IO.Path.Combine(folder, shardName);
                    if (!File.Exists(shardPath))
                        throw new FileNotFoundException(
                            $"{indexPath}: shard '{shardName}' (holding '{tensor}') does not exist at {shardPath}", shardPath);
                    shard = SafetensorsFile.Open(shardPath);
                    opened.Add(shardName, shard);
                    shards.Add(shard);
                }
                if (!shard.TryGet(tensor, out var info))
                    throw new InvalidDataException($"{indexPath}: weight_map puts '{tensor}' in shard '{shardName}', but that shard has no such tensor");
                route.Add(tensor, shard);
                tensors[i] = info;
            }
            return new ShardedSafetensors(indexPath, [.. shards], route, tensors, metadata);
        }
        catch
        {
            foreach (var shard in shards)
                shard.Dispose();
            throw;
        }
    }

    public bool TryGet(string name, out TensorInfo info)
    {
        if (_route.TryGetValue(name, out var shard))
            return shard.TryGet(name, out info);
        info = null!;
        return false;
    }

    public byte[] ReadBytes(string name) => Find(name).ReadBytes(name);

    /// <summary>Reads <paramref name="destination"/>.Length bytes of a tensor starting <paramref name="byteOffset"/> bytes into it.</summary>
    public void ReadBytes(string name, long byteOffset, Span<byte> destination) => Find(name).ReadBytes(name, byteOffset, destination);

    /// <summary>The shard holding a tensor.</summary>
    public SafetensorsFile ShardOf(string name) => Find(name);

    public void Dispose()
    {
        foreach (var shard in _shards)
            shard.Dispose();
    }

    public override string ToString() => Path;

    private SafetensorsFile Find(string name) =>
        _route.TryGetValue(name, out var shard) ? shard : throw new InvalidDataException($"tensor '{name}' not found in {Path}");
}
