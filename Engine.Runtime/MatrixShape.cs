using Engine.Formats;

namespace Engine.Runtime;

internal static class MatrixShape
{
    /// <summary>
    /// A tensor seen as a matrix [rows, columns], checked to fit the 32-bit indices the backends use. A 3-D tensor
    /// [count, rows, columns] is a stack of equal matrices (the experts of a mixture-of-experts layer).
    /// </summary>
    public static (int Rows, int Columns) Of(TensorInfo info)
    {
        if (info.Shape.Length is < 1 or > 3)
            throw new InvalidDataException($"tensor '{info.Name}' has shape {info.ShapeText}; a weight matrix must have 1 or 2 dimensions (3 for a stack of experts)");
        long rows = info.Rows, columns = info.Columns;
        if (rows <= 0 || columns <= 0 || rows * columns > int.MaxValue)
            throw new InvalidDataException($"tensor '{info.Name}' has unsupported shape {info.ShapeText}");
        return ((int)rows, (int)columns);
    }

    /// <summary>Checks that <paramref name="data"/> is exactly the tensor's stored size.</summary>
    public static void CheckSize(TensorInfo info, ReadOnlySpan<byte> data)
    {
        long expected = info.Layout.TotalBytes;
        if (data.Length != expected)
            throw new InvalidDataException($"tensor '{info.Name}': {data.Length} bytes given, {expected} expected for {info.ShapeText} {info.Format.Name}");
    }
}
