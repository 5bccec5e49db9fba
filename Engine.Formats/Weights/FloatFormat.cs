using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Engine.Formats.Weights;

/// <summary>
/// Plain float weights: f32, f16, bf16. Stored unpadded (as safetensors holds them); on a device each row is
/// padded to 8 weights so a shader reads whole 8-weight groups.
/// </summary>
public sealed class FloatFormat : WeightFormat
{
    private readonly int _elementBytes;

    private FloatFormat(WeightType type, string name, int elementBytes)
    {
        Type = type;
        Name = name;
        _elementBytes = elementBytes;
    }

    public static FloatFormat F32 { get; } = new(WeightType.F32, "f32", 4);
    public static FloatFormat F16 { get; } = new(WeightType.F16, "f16", 2);
    public static FloatFormat BF16 { get; } = new(WeightType.BF16, "bf16", 2);

    public override WeightType Type { get; }

    public override string Name { get; }

    public override int BlockSize(FormatParameters parameters) => 1;

    public override int BlockBytes(FormatParameters parameters) => _elementBytes;

    public override MatrixLayout Layout(long rows, long columns, FormatParameters parameters)
    {
        Validate(parameters);
        long padded = RoundUp(columns, 8);
        return new MatrixLayout(rows, columns, columns, [columns * _elementBytes], [padded * _elementBytes], 0);
    }

    public override string ShaderTag(FormatParameters parameters) => Name;

    public override void Decode(TensorInfo info, ReadOnlySpan<byte> data, Span<float> destination, ITensorSource? shared) =>
        DecodeValues(data, destination[..(int)info.ElementCount]);

    /// <summary>Decodes consecutive values (any tensor shape).</summary>
    public void DecodeValues(ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (Type)
        {
            case WeightType.F32 when BitConverter.IsLittleEndian:
                MemoryMarshal.Cast<byte, float>(source[..(destination.Length * 4)]).CopyTo(destination);
                break;
            case WeightType.F32:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BinaryPrimitives.ReadSingleLittleEndian(source[(i * 4)..]);
                break;
            case WeightType.F16:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(source[(i * 2)..]);
                break;
            default:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source[(i * 2)..]) << 16);
                break;
        }
    }

    /// <summary>Encodes values in this format (round to nearest even for f16 and bf16).</summary>
    public void EncodeValues(ReadOnlySpan<float> values, Span<byte> destination)
    {
        for (int i = 0; i < values.Length; i++)
        {
            switch (Type)
            {
                case WeightType.F32:
                    BinaryPrimitives.WriteSingleLittleEndian(destination[(i * 4)..], values[i]);
                    break;
                case WeightType.F16:
                    BinaryPrimitives.WriteHalfLittleEndian(destination[(i * 2)..], (Half)values[i]);
                    break;
                default:
                    BinaryPrimitives.WriteUInt16LittleEndian(destination[(i * 2)..], ToBFloat16(values[i]));
                    break;
            }
        }
    }

    private static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
