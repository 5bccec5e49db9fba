using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Engine.Tests.Formats;

/// <summary>Writes small <c>.safetensors</c> files for tests, well-formed or deliberately not.</summary>
internal sealed class SafetensorsBuilder
{
    private readonly List<(string Name, string Dtype, long[] Shape, byte[] Data)> _tensors = [];
    private readonly Dictionary<string, string> _metadata = [];

    public SafetensorsBuilder Add(string name, string dtype, long[] shape, byte[] data)
    {
        _tensors.Add((name, dtype, shape, data));
        return this;
    }

    public SafetensorsBuilder AddF32(string name, long[] shape, params float[] values)
    {
        var data = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), values[i]);
        return Add(name, "F32", shape, data);
    }

    public SafetensorsBuilder Metadata(string key, string value)
    {
        _metadata[key] = value;
        return this;
    }

    public string HeaderJson()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            if (_metadata.Count > 0)
            {
                writer.WriteStartObject("__metadata__");
                foreach (var (key, value) in _metadata)
                    writer.WriteString(key, value);
                writer.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, dtype, shape, data) in _tensors)
            {
                writer.WriteStartObject(name);
                writer.WriteString("dtype", dtype);
                writer.WriteStartArray("shape");
                foreach (long d in shape)
                    writer.WriteNumberValue(d);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + data.Length);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset += data.Length;
            }
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public byte[] Data() => [.. _tensors.SelectMany(t => t.Data)];

    public byte[] Build() => Compose(HeaderJson(), Data());

    /// <summary>The file bytes for a given header text and data section; the length prefix is the header's byte count.</summary>
    public static byte[] Compose(string headerJson, byte[] data) =>
        Compose((ulong)Encoding.UTF8.GetByteCount(headerJson), headerJson, data);

    /// <summary>The file bytes with an arbitrary (possibly lying) header length prefix.</summary>
    public static byte[] Compose(ulong headerLength, string headerJson, byte[] data)
    {
        byte[] header = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }
}
