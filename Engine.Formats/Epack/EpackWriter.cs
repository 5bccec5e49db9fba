using System.IO.Hashing;

namespace Engine.Formats.Epack;

/// <summary>
/// Writes an .epack file tensor by tensor: each tensor's bytes go to disk (hashed on the way) as soon as they are
/// added, so a model is never held in memory whole. The file is built under a temporary name in the destination
/// folder and renamed by <see cref="Complete"/>; disposing without completing deletes it, so a failure never leaves a
/// half-written file. A tensor added twice under one name with the same bytes (a codebook shared by many tensors) is
/// written once; different bytes under one name are an error.
/// </summary>
public sealed class EpackWriter : IDisposable
{
    private static readonly byte[] Padding = new byte[EpackHeader.DefaultAlignment];

    private readonly string _path;
    private readonly string _temporaryPath;
    private readonly FileStream _stream;
    private readonly List<EpackTensorEntry> _entries = [];
    private readonly Dictionary<string, EpackTensorEntry> _byName = new(StringComparer.Ordinal);
    private bool _completed;

    private EpackWriter(string path, string temporaryPath, FileStream stream)
    {
        _path = path;
        _temporaryPath = temporaryPath;
        _stream = stream;
    }

    /// <summary>The tensors written so far, in file order.</summary>
    public IReadOnlyList<EpackTensorEntry> Entries => _entries;

    /// <summary>Starts writing <paramref name="path"/>; its folder must exist.</summary>
    public static EpackWriter Create(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string fullPath = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(fullPath)!;
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"cannot write {path}: the folder {folder} does not exist");
        if (Directory.Exists(fullPath))
            throw new IOException($"cannot write {path}: it is a folder");
        string temporary = Path.Combine(folder, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        FileStream stream;
        try
        {
            stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new UnauthorizedAccessException($"cannot write {path}: no permission to create files in {folder}", e);
        }
        stream.Write(Padding.AsSpan(0, EpackHeader.Size));
        return new EpackWriter(fullPath, temporary, stream);
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>
    /// Appends a tensor. Its bytes must be exactly what its format's layout says. Returns false when a tensor of that
    /// name and these bytes is already in the file (nothing is written).
    /// </summary>
    public bool Add(TensorInfo info, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(info);
        ObjectDisposedException.ThrowIf(_completed, this);
        ulong checksum = XxHash3.HashToUInt64(data);
        if (_byName.TryGetValue(info.Name, out var existing))
        {
            if (existing.Length == data.Length && existing.Checksum == checksum && existing.Info.Type == info.Type
                && existing.Info.Parameters == info.Parameters && existing.Info.Shape.SequenceEqual(info.Shape))
                return false;
            throw new InvalidOperationException($"two different tensors are named '{info.Name}'");
        }
        if (info.Shape.Length is 0 or > EpackJson.MaxDimensions || info.Shape.Any(d => d <= 0 || d > int.MaxValue))
            throw new ArgumentException($"tensor '{info.Name}' has shape {info.ShapeText}; an .epack stores 1 to {EpackJson.MaxDimensions} dimensions from 1 to {int.MaxValue}");
        long expected = info.Layout.TotalBytes;
        if (data.Length != expected)
            throw new ArgumentException($"tensor '{info.Name}' ({info.Format.Name} {info.ShapeText}) has {data.Length} bytes, its layout needs {expected}");

        PadToAlignment();
        var entry = new EpackTensorEntry(info, _stream.Position, data.Length, checksum);
        _stream.Write(data);
        _entries.Add(entry);
        _byName.Add(info.Name, entry);
        return true;
    }

    /// <summary>Writes the metadata, the directory and the header, flushes, and moves the file to its name; returns its length.</summary>
    public long Complete(EpackMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ObjectDisposedException.ThrowIf(_completed, this);
        foreach (var entry in _entries)
        {
            foreach (string reference in entry.Info.References)
            {
                if (!_byName.ContainsKey(reference))
                    throw new InvalidOperationException($"tensor '{entry.Info.Name}' references '{reference}', which was not written");
            }
        }
        byte[] metadataBytes = EpackJson.WriteMetadata(metadata);
        byte[] directoryBytes = EpackJson.WriteDirectory(_entries);
        long metadataOffset = _stream.Position;
        _stream.Write(metadataBytes);
        long directoryOffset = _stream.Position;
        _stream.Write(directoryBytes);
        long fileLength = _stream.Position;

        Span<byte> header = stackalloc byte[EpackHeader.Size];
        var fields = new EpackHeader(EpackHeader.CurrentVersion, EpackHeader.DefaultAlignment,
            metadataOffset, metadataBytes.Length, directoryOffset, directoryBytes.Length, fileLength, 0);
        fields.Write(header);
        (fields with { Checksum = EpackHeader.ComputeChecksum(header, metadataBytes, directoryBytes) }).Write(header);
        _stream.Position = 0;
        _stream.Write(header);
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(_temporaryPath, _path, overwrite: true);
        _completed = true;
        return fileLength;
    }

    public void Dispose()
    {
        if (_completed) return;
        _completed = true;
        _stream.Dispose();
        File.Delete(_temporaryPath);
    }

    private void PadToAlignment()
    {
        long remainder = _stream.Position % EpackHeader.DefaultAlignment;
        if (remainder != 0) _stream.Write(Padding.AsSpan(0, (int)(EpackHeader.DefaultAlignment - remainder)));
    }
}
