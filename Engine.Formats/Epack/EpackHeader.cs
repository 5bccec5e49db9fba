using System.Buffers.Binary;
using System.IO.Hashing;

namespace Engine.Formats.Epack;

/// <summary>
/// The fixed 64-byte header that starts an .epack file (all integers little-endian):
/// <code>
///  0  8  magic "EPACK\r\n\x1A" (the CR LF and Ctrl-Z catch text-mode transfers)
///  8  4  u32 format version
/// 12  4  u32 alignment of every tensor's offset (a power of two)
/// 16  8  u64 offset of the metadata block (UTF-8 JSON)
/// 24  8  u64 length of the metadata block
/// 32  8  u64 offset of the tensor directory (UTF-8 JSON)
/// 40  8  u64 length of the tensor directory
/// 48  8  u64 length of the whole file
/// 56  8  u64 XXH3-64 of bytes 0..56, then the metadata block, then the directory
/// </code>
/// The writer puts the tensor data first (from the first aligned offset after the header) and the two JSON blocks at
/// the end, so it can stream tensors without knowing the directory in advance.
/// </summary>
internal readonly record struct EpackHeader(
    uint Version,
    uint Alignment,
    long MetadataOffset,
    long MetadataLength,
    long DirectoryOffset,
    long DirectoryLength,
    long FileLength,
    ulong Checksum)
{
    public const int Size = 64;
    public const int ChecksumOffset = 56;
    public const uint CurrentVersion = 1;

    /// <summary>256 bytes: every device's minimum storage-buffer offset alignment divides it, so a tensor can be bound in place.</summary>
    public const uint DefaultAlignment = 256;

    public static ReadOnlySpan<byte> Magic => "EPACK\r\n\x1A"u8;

    public void Write(Span<byte> destination)
    {
        Magic.CopyTo(destination);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], Alignment);
        BinaryPrimitives.WriteInt64LittleEndian(destination[16..], MetadataOffset);
        BinaryPrimitives.WriteInt64LittleEndian(destination[24..], MetadataLength);
        BinaryPrimitives.WriteInt64LittleEndian(destination[32..], DirectoryOffset);
        BinaryPrimitives.WriteInt64LittleEndian(destination[40..], DirectoryLength);
        BinaryPrimitives.WriteInt64LittleEndian(destination[48..], FileLength);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[ChecksumOffset..], Checksum);
    }

    /// <summary>Reads the fields as stored; the caller validates them. Lengths above 2^63 read as negative, which validation refuses.</summary>
    public static EpackHeader Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(source[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[12..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[16..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[24..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[32..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[40..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[48..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[ChecksumOffset..]));

    /// <summary>The checksum of a header (its first 56 bytes), metadata block and directory.</summary>
    public static ulong ComputeChecksum(ReadOnlySpan<byte> header, ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> directory)
    {
        var hash = new XxHash3();
        hash.Append(header[..ChecksumOffset]);
        hash.Append(metadata);
        hash.Append(directory);
        return hash.GetCurrentHashAsUInt64();
    }
}
