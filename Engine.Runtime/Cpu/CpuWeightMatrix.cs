using Engine.Formats;

namespace Engine.Runtime.Cpu;

/// <summary>A weight matrix decoded to float32 once at upload: the reference backend trades memory for clarity.</summary>
internal sealed class CpuWeightMatrix(float[] data, TensorInfo info) : IWeightMatrix
{
    /// <summary>Row-major [Rows, Columns].</summary>
    public float[] Data { get; } = data;

    public TensorInfo Info { get; } = info;

    public int Rows => (int)Info.Rows;

    public int Columns => (int)Info.Columns;

    public WeightType Type => Info.Type;

    public FormatParameters Parameters => Info.Parameters;

    public long ByteSize => Info.Format.BytesRead(Info.Layout, Parameters);

    public ReadOnlySpan<float> Row(int r) => Data.AsSpan(r * Columns, Columns);
}
