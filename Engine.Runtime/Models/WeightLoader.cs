using System.Runtime.InteropServices;
using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// Moves named tensors from a model file to a backend, checking each shape against the config. Every name is looked up
/// with <paramref name="prefix"/> in front, so a model nested in a bigger one (LLaVA's "language_model.") loads unchanged.
/// A synthetic source (benchmark weights) is told each shape first, so it makes the tensor the model expects.
/// </summary>
internal sealed class WeightLoader(ITensorSource tensors, IBackend backend, string prefix = "")
{
    public bool Has(string name) => tensors.TryGet(prefix + name, out _);

    public IWeightMatrix Matrix(string name, int rows, int columns)
    {
        var info = Require(ref name, [rows, columns]);
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
        var info = Require(ref name, [rows, columns]);
        if (info.ElementCount != (long)rows * columns || info.Shape.Length == 0 || info.Shape[0] != rows)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies [{rows}, ...] with {(long)rows * columns} elements");
        float[] values = tensors.ReadFloat32(name);
        return backend.UploadMatrix(new TensorInfo(name, [rows, columns], WeightType.F32), MemoryMarshal.AsBytes(values.AsSpan()));
    }

    public ITensor Vector(string name, int length) => backend.UploadVector(Floats(name, length));

    public ITensor? OptionalVector(string name, int length) =>
        Has(name) ? Vector(name, length) : null;

    /// <summary>A tensor of <paramref name="length"/> elements (any shape) as host floats, for weights a model reshapes.</summary>
    public float[] Floats(string name, int length)
    {
        var info = Require(ref name, [length]);
        if (info.ElementCount != length)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies {length} elements");
        return tensors.ReadFloat32(name);
    }

    /// <summary>A tensor of exactly <paramref name="shape"/> as host floats.</summary>
    public float[] Floats(string name, long[] shape)
    {
        var info = Require(ref name, shape);
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
        var info = tensors.Require(prefix + name);
        if (axis >= info.Shape.Length || info.Shape[axis] <= 0 || info.Shape[axis] > int.MaxValue)
            throw new InvalidDataException($"tensor '{info.Name}' has shape {info.ShapeText}, without a size at dimension {axis}");
        return (int)info.Shape[axis];
    }

    /// <summary>The stored tensor under the prefixed name (which <paramref name="name"/> becomes), declared first to a synthetic source.</summary>
    private TensorInfo Require(ref string name, long[] expectedShape)
    {
        name = prefix + name;
        (tensors as ISyntheticTensorSource)?.Declare(name, expectedShape);
        return tensors.Require(name);
    }
}
