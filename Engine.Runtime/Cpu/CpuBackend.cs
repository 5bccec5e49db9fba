using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Engine.Formats;

namespace Engine.Runtime.Cpu;

/// <summary>
/// The reference backend: plain C# over float32 arrays, accumulating dot products and norms in float64. It is the
/// oracle the shaders are tested against and the fallback when no Vulkan device exists. This file holds memory; the
/// ops are in CpuBackend.CoreOps.cs, .RecurrentOps.cs and .MoeOps.cs (one per interface).
/// </summary>
public sealed partial class CpuBackend : IBackend
{
    private readonly LowRankUploader _lowRank = new();
    private readonly UnfusedProduct _unfused = new();

    public string Name => "cpu";

    public string DeviceName => $"CPU reference ({Environment.ProcessorCount} threads)";

    public IWeightMatrix UploadMatrix(TensorInfo info, ReadOnlySpan<byte> data, ITensorSource? shared = null)
    {
        if (info.Type == WeightType.LowRank) return _lowRank.Upload(this, info, data, shared);
        var (rows, columns) = MatrixShape.Of(info);
        MatrixShape.CheckSize(info, data);
        return new CpuWeightMatrix(info, data, shared, () => RuntimePrecision);
    }

    public int RuntimePrecision
    {
        get;
        set => field = RuntimePrecisionRule.Check(value);
    }

    public ITensor UploadVector(ReadOnlySpan<float> values) => new CpuTensor(values.ToArray());

    public ITensor Allocate(int length, ElementType element = ElementType.F32) => new CpuTensor(new float[length], element);

    public void Write(ITensor destination, int offset, ReadOnlySpan<float> values) => Tensor(destination).Store(offset, values);

    public void Read(ITensor tensor, Span<float> destination) => Tensor(tensor).Data.AsSpan(0, destination.Length).CopyTo(destination);

    public void Dispose()
    {
    }

    /// <summary>A float32 tensor's values (ops that take f16 tensors as well read <see cref="Tensor"/>'s).</summary>
    private static float[] Data(ITensor tensor)
    {
        ElementChecks.F32(tensor);
        return Tensor(tensor).Data;
    }

    private static CpuTensor Tensor(ITensor tensor) => (CpuTensor)tensor;

    /// <summary>Dot product accumulated in float64 (widened 8 floats at a time where the CPU has 256-bit vectors).</summary>
    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var low = Vector256<double>.Zero;
        var high = Vector256<double>.Zero;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= a.Length; i += 8)
            {
                var (aLow, aHigh) = Vector256.Widen(Vector256.Create(a.Slice(i, 8)));
                var (bLow, bHigh) = Vector256.Widen(Vector256.Create(b.Slice(i, 8)));
                low += aLow * bLow;
                high += aHigh * bHigh;
            }
        }
        double sum = Vector256.Sum(low + high);
        for (; i < a.Length; i++) sum += (double)a[i] * b[i];
        return sum;
    }

}
