using System.Runtime.CompilerServices;
using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Runtime;

/// <summary>
/// Uploads low-rank tensors for one backend: each factor through the backend's own UploadMatrix (so any format it
/// runs can be a factor), a shared U (<see cref="FormatParameters.Reference"/>) once per tensor source and name.
/// </summary>
internal sealed class LowRankUploader
{
    // Weak on the source: a closed model file's factors go with it.
    private readonly ConditionalWeakTable<ITensorSource, Dictionary<string, IWeightMatrix>> _shared = [];

    public LowRankMatrix Upload(IBackend backend, TensorInfo info, ReadOnlySpan<byte> data, ITensorSource? source)
    {
        MatrixShape.Of(info);
        var factors = LowRankFormat.Instance.Factors(info, source);
        MatrixShape.CheckSize(info, data);
        var u = info.Parameters.Reference is null ? Factor(backend, factors.U, source) : Shared(backend, factors.U, source);
        var v = Factor(backend, factors.V, source);
        var residual = factors.Residual is null ? null : Factor(backend, factors.Residual, source);
        return new LowRankMatrix(backend, info, u, v, residual);
    }

    private IWeightMatrix Shared(IBackend backend, TensorInfo factor, ITensorSource source)
    {
        var uploaded = _shared.GetOrCreateValue(source);
        if (!uploaded.TryGetValue(factor.Name, out var matrix))
            uploaded[factor.Name] = matrix = Factor(backend, factor, source);
        return matrix;
    }

    private static IWeightMatrix Factor(IBackend backend, TensorInfo factor, ITensorSource source) =>
        backend.UploadMatrix(factor, source.ReadBytes(factor.Name), source);
}
