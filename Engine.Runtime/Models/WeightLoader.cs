using System.Runtime.InteropServices;
using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// Moves named tensors from a model file to a backend, checking each shape against the config. Every name is looked up
/// with <paramref name="prefix"/> in front, so a model nested in a bigger one (LLaVA's "language_model.") loads unchanged.
/// </summary>
internal sealed class WeightLoader(ITensorSource tensors, IBackend backend, string prefix = "")
{
    public bool Has(string name) => tensors.TryGet(prefix + name, out _);

    public IWeightMatrix Matrix(string name, int rows, int columns)
    {
        name = prefix + name;
        var info = tensors.Require(name);
        if (info.Rows != rows || info.Columns != columns || info.Shape.Length != 2)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies [{rows}, {columns}]");
        return backend.UploadMatrix(info, tensors.ReadBytes(name), tensors);
    }

    /// <summary>
    /// A tensor of any rank read as a float32 matrix [rows, columns] of the same elements (a convolution kernel
    /// [out, in, kh, kw] as the matrix of a linear map over unfolded patches).
    /// </summary>
    public IWeightMatrix Reshaped(string name, int rows, int columns)
    {
        name = prefix + name;
        var info = tensors.Require(name);
        if (info.ElementCount != (long)rows * columns || info.Shape.Length == 0 || info.Shape[0] != rows)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies [{rows}, ...] with {(long)rows * columns} elements");
        float[] values = tensors.ReadFloat32(name);
        return backend.UploadMatrix(new TensorInfo(name, [rows, columns], WeightType.F32), MemoryMarshal.AsBytes(values.AsSpan()));
    }

    public ITensor Vector(string name, int length)
    {
        name = prefix + name;
        var info = tensors.Require(name);
        if (info.ElementCount != length)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies [{length}]");
        return backend.UploadVector(tensors.ReadFloat32(name));
    }

    public ITensor? OptionalVector(string name, int length) =>
        Has(name) ? Vector(name, length) : null;
}
