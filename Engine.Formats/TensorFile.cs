using Microsoft.Win32.SafeHandles;

namespace Engine.Formats;

/// <summary>
/// A single file of tensors read on demand with positional reads; the file stays open until <see cref="Dispose"/>.
/// The container formats (safetensors, llama2.c) differ only in how they find the tensors.
/// </summary>
public abstract class TensorFile : ITensorSource
{
    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, StoredTensor> _byName;
    private readonly TensorInfo[] _tensors;

    private protected TensorFile(string path, SafeFileHandle handle, IReadOnlyList<StoredTensor> tensors)
    {
        Path = path;
        _handle = handle;
        _byName = tensors.ToDictionary(t => t.Info.Name, StringComparer.Ordinal);
        _tensors = [.. tensors.Select(t => t.Info)];
    }

    /// <summary>The path the file was opened with.</summary>
    public string Path { get; }

    /// <summary>The tensors in file order.</summary>
    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    public bool TryGet(string name, out TensorInfo info)
    {
        if (_byName.TryGetValue(name, out var stored))
        {
            info = stored.Info;
            return true;
        }
        info = null!;
        return false;
    }

    public byte[] ReadBytes(string name)
    {
        var stored = Find(name);
        byte[] bytes = FileReads.ReadTensor(_handle, stored, Path);
        CheckContent(stored, bytes);
        return bytes;
    }

    /// <summary>Reads <paramref name="destination"/>.Length bytes of a tensor starting <paramref name="byteOffset"/> bytes into it.</summary>
    public void ReadBytes(string name, long byteOffset, Span<byte> destination) =>
        FileReads.ReadTensorRange(_handle, Find(name), byteOffset, destination, Path);

    /// <summary>Absolute file offset and length of a tensor's bytes.</summary>
    public (long Offset, long Length) GetByteRange(string name)
    {
        var stored = Find(name);
        return (stored.Offset, stored.Length);
    }

    public void Dispose()
    {
        _handle.Dispose();
        GC.SuppressFinalize(this);
    }

    public override string ToString() => Path;

    /// <summary>A container that records checksums rejects, with an <see cref="InvalidDataException"/>, bytes that do not match.</summary>
    private protected virtual void CheckContent(StoredTensor tensor, ReadOnlySpan<byte> bytes)
    {
    }

    /// <summary>The open file, for containers that read more than whole tensors.</summary>
    private protected SafeFileHandle Handle => _handle;

    /// <summary>Opens <paramref name="path"/> and parses it with <paramref name="read"/>, closing the file if that fails.</summary>
    private protected static T Open<T>(string path, Func<string, SafeFileHandle, T> read)
    {
        ArgumentNullException.ThrowIfNull(path);
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            return read(path, handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private StoredTensor Find(string name) =>
        _byName.TryGetValue(name, out var stored) ? stored : throw new InvalidDataException($"tensor '{name}' not found in {Path}");
}
