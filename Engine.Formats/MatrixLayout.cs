namespace Engine.Formats;

/// <summary>
/// How a [rows, columns] matrix of one format is stored. The bytes are a sequence of streams, each holding every
/// row in order (stream s = rows × <see cref="RowBytes"/>[s] bytes), then <see cref="TailBytes"/> of per-tensor data
/// (Hadamard signs, for instance). Splitting a format into streams lets a shader read only some of them (SEFP
/// reads only the mantissa planes a precision needs) and lets a backend cut the matrix into row ranges by copying
/// the same row range of every stream.
/// </summary>
/// <param name="PaddedColumns">Row length the streams encode, a multiple of the format's block (the padding is zeros).</param>
/// <param name="RowBytes">Bytes per row in each stream, as stored in the file.</param>
/// <param name="DeviceRowBytes">Bytes per row in each stream on a device: RowBytes rounded up so that every stream row
/// starts 4-byte aligned and a shader may read whole 8-weight groups (equal to RowBytes for the packed formats).</param>
/// <param name="TailBytes">Bytes after the streams.</param>
public sealed record MatrixLayout(long Rows, long Columns, long PaddedColumns, long[] RowBytes, long[] DeviceRowBytes, long TailBytes)
{
    public static MatrixLayout Packed(long rows, long columns, long paddedColumns, long[] rowBytes, long tailBytes = 0) =>
        new(rows, columns, paddedColumns, rowBytes, rowBytes, tailBytes);

    public int StreamCount => RowBytes.Length;

    /// <summary>Total stored bytes, or -1 when the sizes overflow 64 bits (a hostile shape).</summary>
    public long TotalBytes
    {
        get
        {
            long total = TailBytes;
            foreach (long perRow in RowBytes)
            {
                if (!SizeMath.TryMultiply(Rows, perRow, out long stream) || total > long.MaxValue - stream) return -1;
                total += stream;
            }
            return total;
        }
    }

    /// <summary>Byte offset of stream <paramref name="stream"/> in the stored data.</summary>
    public long StreamOffset(int stream)
    {
        long offset = 0;
        for (int s = 0; s < stream; s++) offset += Rows * RowBytes[s];
        return offset;
    }

    /// <summary>Byte offset of the tail.</summary>
    public long TailOffset => StreamOffset(StreamCount);

    /// <summary>Row <paramref name="row"/> of stream <paramref name="stream"/>.</summary>
    public ReadOnlySpan<byte> Row(ReadOnlySpan<byte> data, int stream, long row) =>
        data.Slice((int)(StreamOffset(stream) + row * RowBytes[stream]), (int)RowBytes[stream]);

    public ReadOnlySpan<byte> Tail(ReadOnlySpan<byte> data) => data.Slice((int)TailOffset, (int)TailBytes);
}
