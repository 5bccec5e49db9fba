using System.Diagnostics;
using Engine.Formats;

namespace Engine.Runtime.Benchmarks;

/// <summary>
/// Mat-vec throughput of one weight format at one shape, on random weights. Enough copies of the matrix are
/// cycled that they do not fit in a GPU's last-level cache, so the figure is memory bandwidth, not cache.
/// </summary>
public static class MatVecBenchmark
{
    private const long BytesToCycle = 512L << 20;

    public static Measurement Run(IBackend backend, int rows, int columns, WeightType type, int iterations, int repetitions, int seed = 42)
    {
        var traits = WeightTypes.Get(type);
        var info = new TensorInfo("bench", [rows, columns], type);
        var random = new Random(seed);
        var values = new float[(long)rows * columns];
        for (long i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        byte[] bytes = Encode(values, type);
        long matrixBytes = traits.ByteCount((long)rows * columns);
        int copies = (int)Math.Clamp(BytesToCycle / matrixBytes, 1, 8);
        var matrices = Enumerable.Range(0, copies).Select(_ => backend.UploadMatrix(info, bytes)).ToArray();
        var x = backend.UploadVector(values.AsSpan(0, columns));
        var y = backend.Allocate(rows);
        var sink = new float[1];

        for (int i = 0; i < copies; i++) backend.Linear(matrices[i], null, x, y, 1);
        backend.Read(y, sink);

        var rates = new List<double>();
        for (int r = 0; r < repetitions; r++)
        {
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < iterations; i++) backend.Linear(matrices[i % copies], null, x, y, 1);
            backend.Read(y, sink);
            rates.Add(iterations / clock.Elapsed.TotalSeconds);
        }
        return new Measurement($"matvec {rows}x{columns}", traits.Name, rates, matrices[0].ByteSize);
    }

    /// <summary>Encodes float32 values in a plain floating-point format (f32, f16, bf16).</summary>
    public static byte[] Encode(ReadOnlySpan<float> values, WeightType type)
    {
        var bytes = new byte[WeightTypes.Get(type).ByteCount(values.Length)];
        for (int i = 0; i < values.Length; i++)
        {
            switch (type)
            {
                case WeightType.F32:
                    BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), values[i]);
                    break;
                case WeightType.F16:
                    BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), (Half)values[i]);
                    break;
                case WeightType.BF16:
                    BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), (ushort)(BitConverter.SingleToUInt32Bits(values[i]) >> 16));
                    break;
                default:
                    throw new NotSupportedException($"no encoder for {type}");
            }
        }
        return bytes;
    }
}
