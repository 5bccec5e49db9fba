using System.Buffers.Binary;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace Engine.Formats;

/// <summary>
/// One <c>.safetensors</c> file: an 8-byte little-endian header length, a JSON header
/// (<c>{name: {dtype, shape, data_offsets: [begin, end]}}</c> plus an optional <c>__metadata__</c>), then the data.
/// The header is validated in full before anything the size of a tensor is allocated; tensor bytes are read on demand
/// with positional reads, and the file stays open until <see cref="Dispose"/>.
/// </summary>
public sealed class SafetensorsFile : TensorFile
{
    /// <summary>Headers larger than this are refused before they are read (the format's reference reader uses 100 MB too).</summary>
    public const long MaxHeaderBytes = 100_000_000;


    private SafetensorsFile(string path, SafeFileHandle handle, long dataOffset, long dataLength,
        IReadOnlyList<StoredTensor> tensors, IReadOnlyDictionary<string, string> metadata)
        : base(path, handle, tensors)
    {
        DataOffset = dataOffset;
        DataLength = dataLength;
        Metadata = metadata;
    }

    /// <summary>Absolute offset of the data section (8 + header length).</summary>
    public long DataOffset { get; }

    /// <summary>Length of the data section in bytes.</summary>
    public long DataLength { get; }

    /// <summary>The <c>__metadata__</c> entries (string to string); empty when the header has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafetensorsFile Open(string path) => Open(path, Read);

    private static SafetensorsFile Read(string path, SafeFileHandle handle)
    {
        long fileLength = RandomAccess.GetLength(handle);
        if (fileLength < 8)
            throw new InvalidDataException($"{path}: truncated: {fileLength} bytes is too short for the 8-byte safetensors header length");

        Span<byte> prefix = stackalloc byte[8];
        FileReads.ReadExactly(handle, 0, prefix, path);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)MaxHeaderBytes)
            throw new InvalidDataException(
                $"{path}: header length {headerLength} is larger than the {MaxHeaderBytes}-byte limit (is this a safetensors file?)");
        if (headerLength > (ulong)(fileLength - 8))
            throw new InvalidDataException(
                $"{path}: header length {headerLength} runs past the end of the file ({fileLength} bytes); the file is truncated or not safetensors");
        if (headerLength < 2)
            throw new InvalidDataException($"{path}: header length {headerLength} is too short for a JSON object");

        var header = new byte[(int)headerLength];
        FileReads.ReadExactly(handle, 8, header, path);

        long dataOffset = 8 + (long)headerLength;
        long dataLength = fileLength - dataOffset;

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: header is not valid JSON: {e.Message}", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: header must be a JSON object, found {root.ValueKind}");

            var tensors = new List<StoredTensor>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            IReadOnlyDictionary<string, string> metadata = new Dictionary<string, string>();
            foreach (var property in root.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    metadata = ReadMetadata(path, property.Value);
                    continue;
                }
                if (!names.Add(property.Name))
                    throw new InvalidDataException($"{path}: tensor '{property.Name}' appears twice in the header");
                tensors.Add(ReadEntry(path, property.Name, property.Value, dataOffset, dataLength));
            }
            return new SafetensorsFile(path, handle, dataOffset, dataLength, tensors, metadata);
        }
    }

    private static Dictionary<string, string> ReadMetadata(string path, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}: __metadata__ must be a JSON object, found {element.ValueKind}");
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in element.EnumerateObject())
            metadata[entry.Name] = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString()! : entry.Value.GetRawText();
        return metadata;
    }

    private static StoredTensor ReadEntry(string path, string name, JsonElement entry, long dataOffset, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}: tensor '{name}' header entry must be a JSON object, found {entry.ValueKind}");

        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{path}: tensor '{name}' has no string 'dtype'");
        string dtype = dtypeElement.GetString()!;
        WeightType type = dtype switch
        {
            "F32" => WeightType.F32,
            "F16" => WeightType.F16,
            "BF16" => WeightType.BF16,
            _ => throw new InvalidDataException(
                $"{path}: tensor '{name}' has unsupported dtype '{dtype}' (supported: F32, F16, BF16)"),
        };

        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{path}: tensor '{name}' has no 'shape' array");
        var shape = new long[shapeElement.GetArrayLength()];
        long elements = 1;
        int d = 0;
        foreach (var dimension in shapeElement.EnumerateArray())
        {
            if (dimension.ValueKind != JsonValueKind.Number || !dimension.TryGetInt64(out long size) || size < 0)
                throw new InvalidDataException(
                    $"{path}: tensor '{name}' shape {shapeElement.GetRawText()} has a dimension that is not a non-negative integer");
            shape[d++] = size;
            if (!SizeMath.TryMultiply(elements, size, out elements))
                throw new InvalidDataException($"{path}: tensor '{name}' shape {shapeElement.GetRawText()} has too many elements (overflow)");
        }

        if (!entry.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array
            || offsetsElement.GetArrayLength() != 2)
            throw new InvalidDataException($"{path}: tensor '{name}' has no 'data_offsets' [begin, end] pair");
        var begin = offsetsElement[0];
        var end = offsetsElement[1];
        if (begin.ValueKind != JsonValueKind.Number || !begin.TryGetInt64(out long first) || first < 0
            || end.ValueKind != JsonValueKind.Number || !end.TryGetInt64(out long last) || last < 0)
            throw new InvalidDataException(
                $"{path}: tensor '{name}' data_offsets {offsetsElement.GetRawText()} are not non-negative integers");
        if (last < first)
            throw new InvalidDataException($"{path}: tensor '{name}' data_offsets [{first}, {last}] are out of order");
        if (last > dataLength)
            throw new InvalidDataException(
                $"{path}: tensor '{name}' data_offsets [{first}, {last}] run past the end of the data section ({dataLength} bytes); the file is truncated or corrupt");

        var info = WeightTypes.Get(type);
        if (!SizeMath.TryMultiply(elements, info.BlockBytes(default), out long expected))
            throw new InvalidDataException($"{path}: tensor '{name}' of {elements} {dtype} elements has no valid byte size");
        if (last - first != expected)
            throw new InvalidDataException(
                $"{path}: tensor '{name}' data_offsets [{first}, {last}] hold {last - first} bytes, but shape {shapeElement.GetRawText()} of {dtype} needs {expected}");

        return new StoredTensor(new TensorInfo(name, shape, type), dataOffset + first, last - first);
    }
}
