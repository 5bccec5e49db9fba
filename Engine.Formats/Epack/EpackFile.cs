using System.Buffers;
using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;

namespace Engine.Formats.Epack;

/// <summary>
/// A packed model file (layout: <see cref="EpackHeader"/>, <see cref="EpackJson"/>). Opening validates everything
/// before anything the size of a tensor is allocated: the magic, the version, where the blocks lie against the file
/// length, the checksum of the header and blocks, both JSON blocks, every directory entry (see
/// <see cref="EpackJson.ReadDirectory"/>), that tensors are aligned, inside the file and overlap nothing, that every
/// referenced tensor exists without reference cycles, and the embedded config. Each problem is an
/// <see cref="InvalidDataException"/> naming the file. Tensors are read on demand and checked against their XXH3-64.
/// </summary>
public sealed class EpackFile : TensorFile
{
    public const string Extension = ".epack";

    /// <summary>A metadata block or directory larger than this is refused before it is read.</summary>
    public const long MaxBlockBytes = 1L << 30;

    private readonly Dictionary<string, EpackTensorEntry> _entries;

    private EpackFile(string path, SafeFileHandle handle, EpackHeader header, EpackMetadata metadata, ModelConfig config, List<EpackTensorEntry> entries)
        : base(path, handle, [.. entries.Select(e => new StoredTensor(e.Info, e.Offset, e.Length))])
    {
        FormatVersion = (int)header.Version;
        Alignment = (int)header.Alignment;
        FileLength = header.FileLength;
        Metadata = metadata;
        Config = config;
        Entries = entries;
        _entries = entries.ToDictionary(e => e.Info.Name, StringComparer.Ordinal);
    }

    public int FormatVersion { get; }

    /// <summary>Every tensor offset is a multiple of this.</summary>
    public int Alignment { get; }

    public long FileLength { get; }

    public EpackMetadata Metadata { get; }

    /// <summary>The hyper-parameters, read from the embedded config.json as for a Hugging Face folder.</summary>
    public ModelConfig Config { get; }

    /// <summary>The tensor directory in file order.</summary>
    public IReadOnlyList<EpackTensorEntry> Entries { get; }

    public static EpackFile Open(string path) => Open(path, Read);

    /// <summary>
    /// Hashes every tensor's bytes (read in chunks, never a whole tensor at once) and returns the names whose XXH3-64
    /// differs from the directory's. <paramref name="progress"/> receives the bytes hashed so far.
    /// </summary>
    public IReadOnlyList<string> Verify(IProgress<long>? progress = null)
    {
        var mismatches = new List<string>();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            long done = 0;
            var hash = new XxHash3();
            foreach (var entry in Entries)
            {
                hash.Reset();
                for (long position = 0; position < entry.Length;)
                {
                    int count = (int)Math.Min(buffer.Length, entry.Length - position);
                    FileReads.ReadExactly(Handle, entry.Offset + position, buffer.AsSpan(0, count), Path);
                    hash.Append(buffer.AsSpan(0, count));
                    position += count;
                    done += count;
                    progress?.Report(done);
                }
                if (hash.GetCurrentHashAsUInt64() != entry.Checksum) mismatches.Add(entry.Info.Name);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return mismatches;
    }

    private protected override void CheckContent(StoredTensor tensor, ReadOnlySpan<byte> bytes)
    {
        if (XxHash3.HashToUInt64(bytes) != _entries[tensor.Info.Name].Checksum)
            throw new InvalidDataException($"{Path}: tensor '{tensor.Info.Name}' does not match its checksum: the file is corrupt");
    }

    private static EpackFile Read(string path, SafeFileHandle handle)
    {
        InvalidDataException Error(string message) => new($"{path}: {message}");

        long fileLength = RandomAccess.GetLength(handle);
        if (fileLength < EpackHeader.Size)
            throw Error($"truncated: {fileLength} bytes is shorter than the {EpackHeader.Size}-byte .epack header");
        Span<byte> headerBytes = stackalloc byte[EpackHeader.Size];
        FileReads.ReadExactly(handle, 0, headerBytes, path);
        if (!headerBytes.StartsWith(EpackHeader.Magic))
            throw Error("not an .epack file (bad magic)");
        var header = EpackHeader.Read(headerBytes);
        if (header.Version != EpackHeader.CurrentVersion)
            throw Error($"format version {header.Version} is not supported (this engine reads version {EpackHeader.CurrentVersion})");
        if (header.Alignment < 8 || header.Alignment > 1 << 20 || !uint.IsPow2(header.Alignment))
            throw Error($"tensor alignment {header.Alignment} is not a power of two from 8 to {1 << 20}");
        if (header.FileLength != fileLength)
        {
            throw Error(header.FileLength > fileLength || header.FileLength < 0
                ? $"truncated: the header says {(ulong)header.FileLength} bytes, the file has {fileLength}"
                : $"{fileLength - header.FileLength} unexpected bytes after the {header.FileLength} the header says");
        }
        CheckBlock("metadata", header.MetadataOffset, header.MetadataLength);
        CheckBlock("tensor directory", header.DirectoryOffset, header.DirectoryLength);

        var metadataBytes = new byte[header.MetadataLength];
        FileReads.ReadExactly(handle, header.MetadataOffset, metadataBytes, path);
        var directoryBytes = new byte[header.DirectoryLength];
        FileReads.ReadExactly(handle, header.DirectoryOffset, directoryBytes, path);
        if (EpackHeader.ComputeChecksum(headerBytes, metadataBytes, directoryBytes) != header.Checksum)
            throw Error("the header, metadata or tensor directory does not match its checksum: the file is corrupt");

        var entries = EpackJson.ReadDirectory(directoryBytes, path);
        CheckPlacement(path, header, entries);
        CheckReferences(path, entries);
        var metadata = EpackJson.ReadMetadata(metadataBytes, path);
        var config = HfConfigReader.FromJson(metadata.ConfigJson, metadata.GenerationConfigJson, path) with { RopeLayout = metadata.RopeLayout };
        if (!string.Equals(config.Architecture, metadata.Architecture, StringComparison.Ordinal))
            throw Error($"metadata: architecture '{metadata.Architecture}' differs from the config's model_type '{config.Architecture}'");
        return new EpackFile(path, handle, header, metadata, config, entries);

        void CheckBlock(string name, long offset, long length)
        {
            if (offset < EpackHeader.Size || length < 0 || length > MaxBlockBytes || !SizeMath.TryAdd(offset, length, out long end) || end > fileLength)
                throw Error($"the {name} block [{offset}, +{length}) does not lie inside the file ({fileLength} bytes, header {EpackHeader.Size})");
        }
    }

    /// <summary>Tensors are aligned, inside the file, and overlap neither each other, the header nor the JSON blocks.</summary>
    private static void CheckPlacement(string path, EpackHeader header, List<EpackTensorEntry> entries)
    {
        var regions = new List<(long Start, long End, string What)>
        {
            (0, EpackHeader.Size, "the header"),
            (header.MetadataOffset, header.MetadataOffset + header.MetadataLength, "the metadata block"),
            (header.DirectoryOffset, header.DirectoryOffset + header.DirectoryLength, "the tensor directory"),
        };
        foreach (var entry in entries)
        {
            string what = $"tensor '{entry.Info.Name}'";
            if (entry.Offset % header.Alignment != 0)
                throw new InvalidDataException($"{path}: {what} starts at {entry.Offset}, not a multiple of the alignment {header.Alignment}");
            if (!SizeMath.TryAdd(entry.Offset, entry.Length, out long end) || end > header.FileLength)
                throw new InvalidDataException($"{path}: {what} [{entry.Offset}, +{entry.Length}) runs past the end of the file ({header.FileLength} bytes)");
            regions.Add((entry.Offset, end, what));
        }
        // Sorted by start, non-empty regions are disjoint exactly when each ends before the next begins.
        regions.RemoveAll(r => r.End == r.Start);
        regions.Sort((a, b) => a.Start.CompareTo(b.Start));
        for (int i = 1; i < regions.Count; i++)
        {
            var (previous, current) = (regions[i - 1], regions[i]);
            if (current.Start < previous.End)
                throw new InvalidDataException($"{path}: {current.What} at {current.Start} overlaps {previous.What} [{previous.Start}, {previous.End})");
        }
    }

    /// <summary>Every referenced tensor exists, and following references never loops (a decode would recurse forever).</summary>
    private static void CheckReferences(string path, List<EpackTensorEntry> entries)
    {
        var byName = entries.ToDictionary(e => e.Info.Name, StringComparer.Ordinal);
        // Depth first without recursion (a hostile chain may be long): false while a tensor is on the current path.
        var checkedNames = new Dictionary<string, bool>(StringComparer.Ordinal);
        var stack = new Stack<(EpackTensorEntry Entry, int Next)>();
        foreach (var root in entries)
        {
            if (!checkedNames.TryAdd(root.Info.Name, false)) continue;
            stack.Push((root, 0));
            while (stack.TryPop(out var top))
            {
                var references = top.Entry.Info.References;
                if (top.Next == references.Count)
                {
                    checkedNames[top.Entry.Info.Name] = true;
                    continue;
                }
                stack.Push((top.Entry, top.Next + 1));
                string reference = references[top.Next];
                if (!byName.TryGetValue(reference, out var next))
                    throw new InvalidDataException($"{path}: tensor '{top.Entry.Info.Name}' references '{reference}', which the file does not hold");
                if (checkedNames.TryAdd(reference, false)) stack.Push((next, 0));
                else if (!checkedNames[reference])
                    throw new InvalidDataException($"{path}: tensor '{top.Entry.Info.Name}' has a reference cycle through '{reference}'");
            }
        }
        foreach (var entry in entries)
            entry.Info.Format.CheckReferences(entry.Info, name => byName.TryGetValue(name, out var found) ? found.Info : null, path);
    }
}
