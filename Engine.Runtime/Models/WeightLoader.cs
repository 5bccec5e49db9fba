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

    public ITensor? OptionalVector(string name, int length) =>
        tensors.TryGet(name, out _) ? Vector(name, length) : null;
}
