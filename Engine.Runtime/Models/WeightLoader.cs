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
    /// [experts, rows, columns], stream by stream, so that an expert-indexed product offsets into it.
    /// </summary>
    public IWeightMatrix Experts(IReadOnlyList<string> names, int rows, int columns)
    {
        var first = tensors.Require(names[0]);
        var stacked = new TensorInfo(names[0] + " (stack of " + names.Count + " experts)", [names.Count, rows, columns], first.Type, first.Parameters);
        if (first.Type == WeightType.LowRank) return LowRankExperts(names, stacked, rows, columns);
        if (first.Layout.TailBytes != 0)
            throw new NotSupportedException($"tensor '{names[0]}': experts stored in {first.Format.Name} cannot be stacked (they carry per-matrix data); quantize the experts to another format");
        var layout = stacked.Layout;
        long total = layout.TotalBytes;
        if (total < 0 || total > Array.MaxLength)
            throw new InvalidDataException($"tensor '{names[0]}': the {names.Count} experts take {total} bytes, more than one upload holds");
        var data = new byte[total];
        for (int e = 0; e < names.Count; e++)
        {
            var info = tensors.Require(names[e]);
            if (info.Rows != rows || info.Columns != columns || info.Shape.Length != 2)
                throw new InvalidDataException($"tensor '{names[e]}' has shape {info.ShapeText}, the config implies [{rows}, {columns}]");
            if (info.Type != first.Type || info.Parameters != first.Parameters)
                throw new InvalidDataException($"tensor '{names[e]}' is stored as {info.Format.Name} {info.Parameters}, unlike '{names[0]}' ({first.Format.Name} {first.Parameters}); the experts of a projection must share one format");
            byte[] bytes = tensors.ReadBytes(names[e]);
            var own = info.Layout;
            if (bytes.Length != own.TotalBytes)
                throw new InvalidDataException($"tensor '{names[e]}': {bytes.Length} bytes stored, {own.TotalBytes} expected");
            for (int s = 0; s < layout.StreamCount; s++)
            {
                long length = rows * own.RowBytes[s];
                bytes.AsSpan((int)own.StreamOffset(s), (int)length).CopyTo(data.AsSpan((int)(layout.StreamOffset(s) + e * length)));
            }
        }
        return backend.UploadMatrix(stacked, data, tensors);
    }

    /// <summary>Low-rank experts: each factor kind stacked; a U every expert references (MoBiE) loaded once.</summary>
    private LowRankExperts LowRankExperts(IReadOnlyList<string> names, TensorInfo stacked, int rows, int columns)
    {
        var infos = names.Select(tensors.Require).ToArray();
        foreach (var info in infos)
        {
            if (info.Rows != rows || info.Columns != columns || info.Shape.Length != 2)
                throw new InvalidDataException($"tensor '{info.Name}' has shape {info.ShapeText}, the config implies [{rows}, {columns}]");
            if (info.Type != stacked.Type || info.Parameters.Rank != stacked.Parameters.Rank || info.Parameters.Planes != stacked.Parameters.Planes)
                throw new InvalidDataException($"tensor '{info.Name}' is stored as {info.Format.Name} {info.Parameters}, unlike '{names[0]}' ({stacked.Format.Name} {stacked.Parameters}); the experts of a projection must share one format");
        }
        var factors = infos.Select(info => LowRankFormat.Instance.Factors(info, tensors)).ToArray();
        int rank = stacked.Parameters.Rank;
        var v = Experts([.. factors.Select(f => f.V.Name)], rank, columns);
        bool sharedU = factors.All(f => f.U.Name == factors[0].U.Name);
        return new LowRankExperts(stacked, names.Count, v,
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
