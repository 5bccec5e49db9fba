using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Engine.Formats;

/// <summary>The one table of weight-format traits, indexed by <see cref="WeightType"/>.</summary>
public static class WeightTypes
{
    private static readonly WeightTypeInfo[] Table =
    [
        new(WeightType.F32, "f32", 1, 4, DecodeF32, "f32"),
        new(WeightType.F16, "f16", 1, 2, DecodeF16, "f16"),
        new(WeightType.BF16, "bf16", 1, 2, DecodeBF16, "bf16"),
    ];

    public static IReadOnlyList<WeightTypeInfo> All => Table;

    public static WeightTypeInfo Get(WeightType type)
    {
        int index = (int)type;
        if (index >= Table.Length || Table[index].Type != type)
            throw new InvalidDataException($"unknown weight format id {(int)type}");
        return Table[index];
    }

    public static bool TryGet(string name, out WeightTypeInfo info)
    {
        foreach (var entry in Table)
        {
            if (string.Equals(entry.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                info = entry;
                return true;
            }
        }
        info = null!;
        return false;
    }

    private static void DecodeF32(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (BitConverter.IsLittleEndian)
            MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
        else
            for (int i = 0; i < destination.Length; i++)
                destination[i] = BinaryPrimitives.ReadSingleLittleEndian(source[(i * 4)..]);
    }

    private static void DecodeF16(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int i = 0; i < destination.Length; i++)
            destination[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(source[(i * 2)..]);
    }

    private static void DecodeBF16(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int i = 0; i < destination.Length; i++)
            destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source[(i * 2)..]) << 16);
    }
}
