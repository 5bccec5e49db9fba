using Engine.Formats.Weights;

namespace Engine.Formats;

/// <summary>The one table of weight-format traits, looked up by <see cref="WeightType"/> id or by name.</summary>
public static class WeightTypes
{
    private static readonly WeightFormat[] Table =
    [
        FloatFormat.F32,
        FloatFormat.F16,
        FloatFormat.BF16,
        GroupIntFormat.Q8,
        GroupIntFormat.Q4,
        GroupIntFormat.Q3,
        GroupIntFormat.Q2,
        SefpFormat.Instance,
        BinaryFormat.Instance,
        PcdvqFormat.Instance,
        LowRankFormat.Instance,
    ];

    // Indexed by id; ids without a format (retired or not built) stay null.
    private static readonly WeightFormat?[] ById = IndexById(Table);

    public static IReadOnlyList<WeightFormat> All => Table;

    public static WeightFormat Get(WeightType type) =>
        TryGet(type, out var format) ? format : throw new InvalidDataException($"unknown weight format id {(int)type}");

    public static bool TryGet(WeightType type, out WeightFormat format)
    {
        int index = (int)type;
        format = index < ById.Length ? ById[index]! : null!;
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

    private static WeightFormat?[] IndexById(WeightFormat[] formats)
    {
        var byId = new WeightFormat?[formats.Max(f => (int)f.Type) + 1];
        foreach (var format in formats)
        {
            if (byId[(int)format.Type] is not null)
                throw new InvalidOperationException($"weight format id {(int)format.Type} is in the table twice");
            byId[(int)format.Type] = format;
        }
        return byId;
    }
}
