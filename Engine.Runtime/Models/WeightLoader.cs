using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Runtime.Models;

/// <summary>Moves named tensors from a model file to a backend, checking each shape against the config.</summary>
internal sealed class WeightLoader(ITensorSource tensors, IBackend backend)
{
    public IWeightMatrix Matrix(string name, int rows, int columns)
    {
        var info = tensors.Require(name);
        if (info.Rows != rows || info.Columns != columns || info.Shape.Length != 2)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies [{rows}, {columns}]");
        return backend.UploadMatrix(info, tensors.ReadBytes(name), tensors);
    }

    /// <summary>
    /// The experts' matrices (each [rows, columns], one format and parameters) uploaded as one stack
    /// [experts, rows, columns], so that an expert-indexed product offsets into it.
    /// </summary>
    public IWeightMatrix Experts(IReadOnlyList<string> names, int rows, int columns)
    {
        var infos = names.Select(tensors.Require).ToArray();
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
        var v = Experts([.. factors.Select(f => f.V.Name)], rank, columns);
        bool sharedU = factors.All(f => f.U.Name == factors[0].U.Name);
        return new LowRankExperts(stacked, infos.Length, v,
            sharedU ? Matrix(factors[0].U.Name, rows, rank) : null,
            sharedU ? null : Experts([.. factors.Select(f => f.U.Name)], rows, rank),
            factors[0].Residual is null ? null : Experts([.. factors.Select(f => f.Residual!.Name)], rows, columns));
    }

    public ITensor Vector(string name, int length)
    {
        var info = tensors.Require(name);
        if (info.ElementCount != length)
            throw new InvalidDataException($"tensor '{name}' has shape {info.ShapeText}, the config implies [{length}]");
        return backend.UploadVector(tensors.ReadFloat32(name));
    }

    public ITensor? OptionalVector(string name, int length) =>
        tensors.TryGet(name, out _) ? Vector(name, length) : null;
}
