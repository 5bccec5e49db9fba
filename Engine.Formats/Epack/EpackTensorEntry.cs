namespace Engine.Formats.Epack;

/// <summary>
/// One tensor in an .epack directory: what it is (name, shape, format id and parameters), where its bytes lie
/// (absolute <paramref name="Offset"/>, <paramref name="Length"/>) and their XXH3-64.
/// </summary>
public sealed record EpackTensorEntry(TensorInfo Info, long Offset, long Length, ulong Checksum);
