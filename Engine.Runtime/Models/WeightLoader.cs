using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Runtime.Models;

/// <summary>
/// Moves named tensors from a model file to a backend, checking each shape against the config. Every name is looked up
/// with <paramref name="prefix"/> in front, so a model nested in a bigger one (LLaVA's "language_model.") loads unchanged.
/// A synthetic source (benchmark weights) is told each shape first, so it makes the tensor the model expects.
/// </summary>
internal sealed class WeightLoader(ITensorSource tensors, IBackend backend, string prefix = "", bool joinMatrices = true)
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
    /// Matrices of one width joined row-wise into one upload (<see cref="MatrixRows"/>): stacked, or with two parts
    /// <paramref name="interleave"/>d row by row. Null when their formats cannot be joined or joining is off
    /// (<see cref="ModelOptions.JoinMatrices"/>); the caller then loads them one by one.
    /// </summary>
    public IWeightMatrix? Joined(string name, IReadOnlyList<(string Name, int Rows)> parts, int columns, bool interleave = false)
    {
        if (!joinMatrices) return null;
        var infos = parts.Select(part =>
        {
            string full = part.Name;
            var info = Require(ref full, [part.Rows, columns]);
            if (info.Rows != part.Rows || info.Columns != columns || info.Shape.Length != 2)
                throw new InvalidDataException($"tensor '{full}' has shape {info.ShapeText}, the config implies [{part.Rows}, {columns}]");
            return info;
        }).ToArray();
        if (!MatrixRows.CanJoin(infos)) return null;
        var data = infos.Select(info => tensors.ReadBytes(info.Name)).ToArray();
        var (joined, bytes) = interleave
            ? MatrixRows.Interleave(infos[0], data[0], infos[1], data[1], prefix + name)
            : MatrixRows.Stack(infos, data, prefix + name);
        return backend.UploadMatrix(joined, bytes, tensors);
    }

    /// <summary>
    /// The experts' matrices (each [rows, columns], one format and parameters) uploaded as one stack
    /// [experts, rows, columns], so that an expert-indexed product offsets into it.
    /// </summary>
    public IWeightMatrix Experts(IReadOnlyList<string> names, int rows, int columns) =>
        Stack([.. names.Select(name => prefix + name)], rows, columns);

    /// <summary><see cref="Experts"/> of full tensor names (low-rank factors name theirs in the file).</summary>
    private IWeightMatrix Stack(string[] names, int rows, int columns)
    {
        var infos = names.Select(name =>
        {
            (tensors as ISyntheticTensorSource)?.Declare(name, [rows, columns]);
            return tensors.Require(name);
        }).ToArray();
        foreach (var info in infos)
        {
            if (info.Rows != rows || info.Columns != columns || info.Shape.Length != 2)
                throw new InvalidDataException($"tensor '{info.Name}' has shape {info.ShapeText}, the config implies [{rows}, {columns}]");
        }
        return infos[0].Type == WeightType.LowRank
            ? LowRankExperts(infos, rows, columns)
            : backend.UploadExperts(infos, [.. names.Select(tensors.ReadBytes)], tensors);
    }

    /// <summary>Low-rank experts: each factor kind stacked; a U every expert references (MoBiE) loaded once.</summary>
    private LowRankExperts LowRankExperts(TensorInfo[] infos, int rows, int columns)
    {
        var first = infos[0];
        foreach (var info in infos)
        {
            if (info.Type != first.Type || info.Parameters.Rank != first.Parameters.Rank || info.Parameters.Planes != first.Parameters.Planes)
                throw new InvalidDataException($"tensor '{info.Name}' is stored as {info.Format.Name} {info.Parameters}, unlike '{first.Name}' ({first.Format.Name} {first.Parameters}); the experts of a projection must share one format");
        }
        var factors = infos.Select(info => LowRankFormat.Instance.Factors(info, tensors)).ToArray();
        int rank = first.Parameters.Rank;
        var stacked = new TensorInfo($"{first.Name} (stack of {infos.Length} experts)", [infos.Length, rows, columns], first.Type, first.Parameters);
        var v = Stack([.. factors.Select(f => f.V.Name)], rank, columns);
        bool sharedU = factors.All(f => f.U.Name == factors[0].U.Name);
        var u = factors[0].U;
        return new LowRankExperts(stacked, infos.Length, v,
            sharedU ? backend.UploadMatrix(u, tensors.ReadBytes(u.Name), tensors) : null,
            sharedU ? null : Stack([.. factors.Select(f => f.U.Name)], rows, rank),
            factors[0].Residual is null ? null : Stack([.. factors.Select(f => f.Residual!.Name)], rows, columns));
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
