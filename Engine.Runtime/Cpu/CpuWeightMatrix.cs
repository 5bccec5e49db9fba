using Engine.Formats;

namespace Engine.Runtime.Cpu;

/// <summary>
/// A weight matrix decoded to float32 at upload: the reference backend trades memory for clarity. A format with a
/// run-time precision (SEFP) also keeps its stored bytes and decodes again when the backend's precision changes.
/// </summary>
internal sealed class CpuWeightMatrix : IWeightMatrix
{
    private readonly byte[]? _stored;
    private readonly ITensorSource? _shared;
    private readonly Func<int> _requestedPrecision;
    private int _decodedPrecision;

    public CpuWeightMatrix(TensorInfo info, ReadOnlySpan<byte> data, ITensorSource? shared, Func<int> requestedPrecision)
    {
        Info = info;
        _requestedPrecision = requestedPrecision;
        Data = new float[info.ElementCount];
        if (info.Format.EffectivePrecision(info.Parameters, 0) != 0)
        {
            _stored = data.ToArray();
            _shared = shared;
        }
        _decodedPrecision = Precision;
        info.Format.Decode(info, data, Data, shared, _decodedPrecision);
    }

    /// <summary>Row-major [Rows, Columns], decoded at the current precision.</summary>
    public float[] Data { get; }

    public TensorInfo Info { get; }

    public int Rows => (int)Info.Rows;

    public int Columns => (int)Info.Columns;

    public WeightType Type => Info.Type;

    public FormatParameters Parameters => Info.Parameters;

    public long ByteSize => Info.Format.BytesRead(Info.Layout, Parameters, Precision);

    private int Precision => Info.Format.EffectivePrecision(Parameters, _requestedPrecision());

    /// <summary>Row <paramref name="r"/> at the backend's current precision (decoding again if it changed).</summary>
    public ReadOnlySpan<float> Row(int r)
    {
        if (_stored is not null && Precision != _decodedPrecision)
        {
            lock (Data)
            {
                int precision = Precision;
                if (precision != _decodedPrecision)
                {
                    Info.Format.Decode(Info, _stored, Data, _shared, precision);
                    _decodedPrecision = precision;
                }
            }
        }
        return Data.AsSpan(r * Columns, Columns);
    }
}
