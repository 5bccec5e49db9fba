namespace Engine.Runtime.Cpu;

/// <summary>A float32 vector in host memory.</summary>
internal sealed class CpuTensor(float[] data) : ITensor
{
    public float[] Data { get; } = data;

    public int Length => Data.Length;
}
