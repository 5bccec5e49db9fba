using Engine.Formats;

namespace Engine.Runtime.Cpu;

/// <summary>A weight matrix decoded to float32 once at upload: the reference backend trades memory for clarity.</summary>
internal sealed class CpuWeightMatrix(float[] data, int rows, int columns, WeightType type) : IWeightMatrix
{
    /// <summary>Row-major [Rows, Columns].</summary>
    public float[] Data { get; } = data;

    public int Rows { get; } = rows;

    public int Columns { get; } = columns;

    public WeightType Type { get; } = type;

    public long ByteSize => WeightTypes.Get(Type).ByteCount((long)Rows * Columns);

    public ReadOnlySpan<float> Row(int r) => Data.AsSpan(r * Columns, Columns);
}
