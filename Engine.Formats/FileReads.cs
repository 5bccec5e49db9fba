using Microsoft.Win32.SafeHandles;

namespace Engine.Formats;

/// <summary>Positional reads that either fill the whole buffer or say which file came up short.</summary>
internal static class FileReads
{
    public static void ReadExactly(SafeFileHandle handle, long offset, Span<byte> destination, string path)
    {
        while (!destination.IsEmpty)
        {
            int read = RandomAccess.Read(handle, destination, offset);
            if (read <= 0)
                throw new InvalidDataException($"{path}: unexpected end of file at byte {offset} (was the file truncated while open?)");
            destination = destination[read..];
            offset += read;
        }
    }

    /// <summary>Reads a stored tensor into a new array, refusing tensors a single array cannot hold.</summary>
    public static byte[] ReadTensor(SafeFileHandle handle, StoredTensor tensor, string path)
    {
        if (tensor.Length > Array.MaxLength)
            throw new InvalidDataException(
                $"{path}: tensor '{tensor.Info.Name}' is {tensor.Length} bytes, more than one array can hold ({Array.MaxLength})");
        var bytes = GC.AllocateUninitializedArray<byte>((int)tensor.Length);
        ReadExactly(handle, tensor.Offset, bytes, path);
        return bytes;
    }

    /// <summary>Reads part of a stored tensor, checking that the range lies inside it.</summary>
    public static void ReadTensorRange(SafeFileHandle handle, StoredTensor tensor, long byteOffset, Span<byte> destination, string path)
    {
        if (byteOffset < 0 || byteOffset > tensor.Length || destination.Length > tensor.Length - byteOffset)
            throw new ArgumentOutOfRangeException(
                nameof(byteOffset),
                $"{path}: bytes [{byteOffset}, {byteOffset + destination.Length}) lie outside tensor '{tensor.Info.Name}' ({tensor.Length} bytes)");
        ReadExactly(handle, tensor.Offset + byteOffset, destination, path);
    }
}
