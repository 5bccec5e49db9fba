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

    /// <summary>Times y = W x for the matrix <paramref name="info"/> stored as <paramref name="data"/> (random values, encoded by the caller).</summary>
    public static Measurement Run(IBackend backend, TensorInfo info, byte[] data, ITensorSource? shared, int iterations, int repetitions, int seed = 42)
    {
        int rows = (int)info.Rows, columns = (int)info.Columns;
        var random = new Random(seed);
        var values = new float[columns];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        int copies = (int)Math.Clamp(BytesToCycle / Math.Max(1, data.Length), 1, 8);
        var matrices = Enumerable.Range(0, copies).Select(_ => backend.UploadMatrix(info, data, shared)).ToArray();
        var x = backend.UploadVector(values);
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
        return new Measurement($"matvec {rows}x{columns}", info.Format.Name, rates, matrices[0].ByteSize);
    }

    /// <summary>
    /// The bandwidth ceiling the mat-vec figures are compared with: a copy between two device buffers (the transfer
    /// engine's vkCmdCopyBuffer on Vulkan), counted as bytes read plus bytes written per copy.
    /// </summary>
    public static Measurement Copy(IBackend backend, int iterations, int repetitions)
    {
        const int floats = 16 << 20;  // 64 MiB each way: past any last-level cache, within every device's binding range
        var source = backend.Allocate(floats);
        var destination = backend.Allocate(floats);
        var sink = new float[1];
        Action copy = backend is Vulkan.VulkanBackend vulkan
            ? () => vulkan.TransferCopy(source, destination)
            : () => backend.Copy(source, 0, destination, 0, floats);
        copy();
        backend.Read(destination, sink);
        var rates = new List<double>();
        for (int r = 0; r < repetitions; r++)
        {
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < iterations; i++) copy();
            backend.Read(destination, sink);
            rates.Add(iterations / clock.Elapsed.TotalSeconds);
        }
        return new Measurement("copy 64 MiB", "f32", rates, 2L * floats * sizeof(float));
    }
}
