namespace Engine.Runtime.Cpu;

/// <summary>
/// A vector in host memory. An <see cref="ElementType.F16"/> tensor keeps floats too, each rounded to half precision
/// as it is stored: a float holds every half exactly, so the ops read either kind alike, and only stores differ.
/// </summary>
internal sealed class CpuTensor(float[] data, ElementType element = ElementType.F32) : ITensor
{
    public float[] Data { get; } = data;

    public int Length => Data.Length;

    public ElementType Element { get; } = element;

    /// <summary>Stores values at an offset: as they are, or in an f16 tensor rounded to the nearest half (ties to even, as the shaders round).</summary>
    public void Store(int offset, ReadOnlySpan<float> values)
    {
        var target = Data.AsSpan(offset, values.Length);
        if (Element == ElementType.F32)
        {
            values.CopyTo(target);
            return;
        }
        for (int i = 0; i < values.Length; i++) target[i] = (float)(Half)values[i];
    }
}
