using Engine.Formats;

namespace Engine.Runtime;

/// <summary>Stacks the experts of one projection for <see cref="IBackend.UploadExperts"/>, shared by the backends.</summary>
internal static class ExpertStack
{
    /// <summary>
    /// The stack [E, rows, columns] and its bytes: each stream of every expert in turn (a stream holds whole rows, so
    /// the result is the layout of one [E·rows, columns] matrix), then a zero tail of the stacked layout's size:
    /// per-matrix data (PCDVQ's rotation signs) stays with each expert, for the backend to stack its own way.
    /// </summary>
    public static (TensorInfo Info, byte[] Data) Concatenate(IReadOnlyList<TensorInfo> experts, IReadOnlyList<byte[]> data)
    {
        if (experts.Count == 0 || experts.Count != data.Count) throw new ArgumentException("no experts, or not one byte array per expert");
        var first = experts[0];
        var stacked = new TensorInfo($"{first.Name} (stack of {experts.Count} experts)", [experts.Count, first.Rows, first.Columns], first.Type, first.Parameters);
        var layout = stacked.Layout;
        long total = layout.TotalBytes;
        if (total < 0 || total > Array.MaxLength)
            throw new InvalidDataException($"tensor '{first.Name}': the {experts.Count} experts take {total} bytes, more than one upload holds");
        var bytes = new byte[total];
        for (int e = 0; e < experts.Count; e++)
        {
            var info = experts[e];
            if (info.Shape.Length != 2 || info.Rows != first.Rows || info.Columns != first.Columns)
                throw new InvalidDataException($"expert tensor '{info.Name}' has shape {info.ShapeText}, unlike '{first.Name}' {first.ShapeText}");
            if (info.Type != first.Type || info.Parameters != first.Parameters)
                throw new InvalidDataException($"expert tensor '{info.Name}' is stored as {info.Format.Name} {info.Parameters}, unlike '{first.Name}' ({first.Format.Name} {first.Parameters}); the experts of a projection must share one format");
            var own = info.Layout;
            if (data[e].Length != own.TotalBytes)
                throw new InvalidDataException($"expert tensor '{info.Name}': {data[e].Length} bytes given, {own.TotalBytes} expected");
            for (int s = 0; s < layout.StreamCount; s++)
            {
                long length = info.Rows * own.RowBytes[s];
                data[e].AsSpan((int)own.StreamOffset(s), (int)length).CopyTo(bytes.AsSpan((int)(layout.StreamOffset(s) + e * length)));
            }
        }
        return (stacked, bytes);
    }
}
