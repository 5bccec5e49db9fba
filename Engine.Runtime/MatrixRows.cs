using Engine.Formats;

namespace Engine.Runtime;

/// <summary>
/// Several matrices of one format joined row-wise into one, in their stored bytes, so one product serves them
/// (a layer's q, k and v; gate and up row by row for a SwiGLU epilogue). Formats with per-matrix data after
/// their rows (PCDVQ's rotation signs) and low-rank factors cannot be joined.
/// </summary>
internal static class MatrixRows
{
    public static bool CanJoin(IReadOnlyList<TensorInfo> parts) =>
        parts.Count > 0 && parts.All(p => p.Shape.Length == 2 && p.Type == parts[0].Type && p.Parameters == parts[0].Parameters
            && p.Columns == parts[0].Columns && p.Type != WeightType.LowRank && p.Layout.TailBytes == 0);

    /// <summary>The parts' rows one matrix after another.</summary>
    public static (TensorInfo Info, byte[] Data) Stack(IReadOnlyList<TensorInfo> parts, IReadOnlyList<byte[]> data, string name) =>
        Join(parts, data, name, interleave: false);

    /// <summary>Two matrices of equal shape row by row: row 2j is the first's row j, row 2j+1 the second's.</summary>
    public static (TensorInfo Info, byte[] Data) Interleave(TensorInfo first, byte[] firstData, TensorInfo second, byte[] secondData, string name)
    {
        if (first.Rows != second.Rows) throw new ArgumentException($"'{first.Name}' and '{second.Name}' differ in rows");
        return Join([first, second], [firstData, secondData], name, interleave: true);
    }

    private static (TensorInfo Info, byte[] Data) Join(IReadOnlyList<TensorInfo> parts, IReadOnlyList<byte[]> data, string name, bool interleave)
    {
        if (!CanJoin(parts)) throw new ArgumentException($"'{name}': the matrices do not share one joinable format and width");
        var first = parts[0];
        var joined = new TensorInfo(name, [parts.Sum(p => p.Rows), first.Columns], first.Type, first.Parameters);
        var layout = joined.Layout;
        var bytes = new byte[layout.TotalBytes];
        for (int s = 0; s < layout.StreamCount; s++)
        {
            long rowBytes = layout.RowBytes[s], target = layout.StreamOffset(s);
            long rowsBefore = 0;
            for (int i = 0; i < parts.Count; i++)
            {
                var own = parts[i].Layout;
                if (data[i].Length != own.TotalBytes)
                    throw new InvalidDataException($"tensor '{parts[i].Name}': {data[i].Length} bytes given, {own.TotalBytes} expected");
                if (own.RowBytes[s] != rowBytes) throw new InvalidDataException($"tensor '{parts[i].Name}': stream {s} rows differ in size");
                var source = data[i].AsSpan((int)own.StreamOffset(s), (int)(parts[i].Rows * rowBytes));
                if (!interleave)
                {
                    source.CopyTo(bytes.AsSpan((int)(target + rowsBefore * rowBytes)));
                    rowsBefore += parts[i].Rows;
                    continue;
                }
                for (long r = 0; r < parts[i].Rows; r++)
                    source.Slice((int)(r * rowBytes), (int)rowBytes).CopyTo(bytes.AsSpan((int)(target + (2 * r + i) * rowBytes)));
            }
        }
        return (joined, bytes);
    }
}
