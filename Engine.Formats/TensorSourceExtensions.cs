namespace Engine.Formats;

public static class TensorSourceExtensions
{
    /// <summary>The tensor's description, or an error naming the tensor and the source.</summary>
    public static TensorInfo Require(this ITensorSource source, string name)
    {
        ArgumentNullException.ThrowIfNull(source);
        return source.TryGet(name, out var info) ? info : throw new InvalidDataException($"tensor '{name}' not found in {source.Path}");
    }

    /// <summary>Reads a tensor and decodes it to float32 through its format's CPU reference decode.</summary>
    public static float[] ReadFloat32(this ITensorSource source, string name)
    {
        var info = source.Require(name);
        var format = WeightTypes.Get(info.Type);
        long count = info.ElementCount;
        if (count > Array.MaxLength)
            throw new InvalidDataException($"tensor '{name}' in {source.Path} has {count} elements, more than one float array can hold");
        byte[] bytes = source.ReadBytes(name);
        long expected = info.Layout.TotalBytes;
        if (bytes.Length != expected)
            throw new InvalidDataException(
                $"tensor '{name}' in {source.Path}: read {bytes.Length} bytes, but {info.ShapeText} of {format.Name} needs {expected}");
        var values = new float[count];
        format.Decode(info, bytes, values, source);
        return values;
    }
}
