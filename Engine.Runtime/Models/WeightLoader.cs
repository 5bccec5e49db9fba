using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// Moves named tensors from a model file to a backend, checking each shape against the config. A synthetic source
/// (benchmark weights) is told each shape first, so it makes the tensor the model expects.
/// </summary>
internal sealed class WeightLoader(ITensorSource tensors, IBackend backend)
{
    public IWeightMatrix Matrix(string name, int rows, int columns)
    {
        (tensors as ISyntheticTensorSource)?.Declare(name, [rows, columns]);
        var info = tensors.Require(name);
        if (info.Rows != rows || info.Columns != columns || info.Shape.Length != 2)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies [{rows}, {columns}]");
        return backend.UploadMatrix(info, tensors.ReadBytes(name), tensors);
    }

    public ITensor Vector(string name, int length)
    {
        (tensors as ISyntheticTensorSource)?.Declare(name, [length]);
        var info = tensors.Require(name);
        if (info.ElementCount != length)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies [{length}]");
        return backend.UploadVector(tensors.ReadFloat32(name));
    }

    /// <summary>A small tensor of <paramref name="length"/> elements (any shape) as host floats, for weights a model reshapes.</summary>
    public float[] Floats(string name, int length)
    {
        (tensors as ISyntheticTensorSource)?.Declare(name, [length]);
        var info = tensors.Require(name);
        if (info.ElementCount != length)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies {length} elements");
        return tensors.ReadFloat32(name);
    }

    /// <summary>A tensor of exactly <paramref name="shape"/> as host floats.</summary>
    public float[] Floats(string name, long[] shape)
    {
        (tensors as ISyntheticTensorSource)?.Declare(name, shape);
        var info = tensors.Require(name);
        if (!info.Shape.SequenceEqual(shape))
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies [{string.Join(", ", shape)}]");
        return tensors.ReadFloat32(name);
    }

    /// <summary>
    /// A size the config may give (<paramref name="configured"/> above 0), else dimension <paramref name="axis"/> of a
    /// tensor: configs that omit a size still load, and synthetic weights take it from the config.
    /// </summary>
    public int Size(int configured, string name, int axis)
    {
        if (configured > 0) return configured;
        var info = tensors.Require(name);
        if (axis >= info.Shape.Length || info.Shape[axis] <= 0 || info.Shape[axis] > int.MaxValue)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, without a size at dimension {axis}");
        return (int)info.Shape[axis];
    }

    public ITensor? OptionalVector(string name, int length) =>
        tensors.TryGet(name, out _) ? Vector(name, length) : null;
}
