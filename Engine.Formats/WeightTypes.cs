using Engine.Formats.Weights;

namespace Engine.Formats;

/// <summary>The one table of weight-format traits, indexed by <see cref="WeightType"/>.</summary>
public static class WeightTypes
{
    private static readonly WeightFormat[] Table =
    [
        FloatFormat.F32,
        FloatFormat.F16,
        FloatFormat.BF16,
    ];

    public static IReadOnlyList<WeightFormat> All => Table;

    public static WeightFormat Get(WeightType type)
    {
        int index = (int)type;
        if (index >= Table.Length || Table[index].Type != type)
            throw new InvalidDataException($"unknown weight format id {(int)type}");
        return Table[index];
    }

    public static bool TryGet(WeightType type, out WeightFormat format)
    {
        int index = (int)type;
        format = index < Table.Length && Table[index].Type == type ? Table[index] : null!;
        return format is not null;
    }

    public static bool TryGet(string name, out WeightFormat format)
    {
        foreach (var entry in Table)
        {
            if (string.Equals(entry.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                format = entry;
                return true;
            }
        }
        format = null!;
        return false;
    }
}
