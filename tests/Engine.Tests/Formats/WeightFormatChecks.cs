using Engine.Formats;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Tests.Runtime;
using Xunit;

namespace Engine.Tests.Formats;

/// <summary>
/// The checks every weight format passes, on fresh random matrices: the Vulkan mat-vec, mat-mat and embedding,
/// which decode in place, against the CPU reference (decode, then multiply in float64); and bits per weight
/// measured from the bytes written. Each format's test class calls these with its own parameters and odd shapes.
/// </summary>
public static class WeightFormatChecks
{
    private static readonly Random Random = new();

    public static float[] RandomValues(int count, double scale = 1.0)
    {
        var values = new float[count];
        lock (Random)
            for (int i = 0; i < count; i++) values[i] = (float)((Random.NextDouble() * 2 - 1) * scale);
        return values;
    }

    /// <summary>Encodes a random [rows, columns] matrix with the format's default method.</summary>
    public static EncodedTensor Encode(WeightType type, FormatParameters parameters, int rows, int columns, double scale = 1.0) =>
        WeightEncoders.Encode(type, "w", RandomValues(rows * columns, scale), rows, columns, parameters);

    /// <summary>The CPU reference decode of an encoded tensor.</summary>
    public static float[] Decode(EncodedTensor encoded)
    {
        using var shared = new InMemoryTensors(encoded.Companions);
        var values = new float[encoded.Info.ElementCount];
        encoded.Info.Format.Decode(encoded.Info, encoded.Data, values, shared);
        return values;
    }

    /// <summary>y = W x (+ bias) for <paramref name="tokens"/> tokens on Vulkan against the CPU reference, with and without bias.</summary>
    public static void LinearMatchesReference(BackendPair backends, WeightType type, FormatParameters parameters, int tokens, int rows, int columns) =>
        LinearMatchesReference(backends, Encode(type, parameters, rows, columns), tokens);

    /// <summary>y = W x (+ bias) for <paramref name="tokens"/> tokens on Vulkan against the CPU reference, for a tensor encoded by the caller.</summary>
    public static void LinearMatchesReference(BackendPair backends, EncodedTensor encoded, int tokens)
    {
        var parameters = encoded.Info.Parameters;
        int rows = (int)encoded.Info.Rows, columns = (int)encoded.Info.Columns;
        using var shared = new InMemoryTensors(encoded.Companions);
        float[] x = RandomValues(tokens * columns);
        float[] bias = RandomValues(rows);
        foreach (bool withBias in new[] { false, true })
        {
            var (cpu, gpu) = Both(backends, be =>
            {
                var y = be.Allocate(tokens * rows);
                be.Linear(be.UploadMatrix(encoded.Info, encoded.Data, shared), withBias ? be.UploadVector(bias) : null, be.UploadVector(x), y, tokens);
                return y;
            }, tokens * rows);
            AssertClose(cpu, gpu, 1e-4, $"{encoded.Info.Format.Name} {parameters} linear {tokens}x[{rows},{columns}] bias={withBias}");
        }
    }

    /// <summary>The CPU backend's linear is exactly decode-then-multiply in float64 (the oracle the shaders are held to).</summary>
    public static void CpuLinearIsDecodeThenMultiply(BackendPair backends, WeightType type, FormatParameters parameters, int rows, int columns)
    {
        var encoded = Encode(type, parameters, rows, columns);
        using var shared = new InMemoryTensors(encoded.Companions);
        float[] w = Decode(encoded);
        float[] x = RandomValues(columns);
        var y = new float[rows];
        var be = backends.Cpu;
        var output = be.Allocate(rows);
        be.Linear(be.UploadMatrix(encoded.Info, encoded.Data, shared), null, be.UploadVector(x), output, 1);
        be.Read(output, y);
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            for (int c = 0; c < columns; c++) sum += (double)w[r * columns + c] * x[c];
            Assert.Equal((float)sum, y[r], 1e-4f * Math.Max(1f, Math.Abs((float)sum)));
        }
    }

    /// <summary>Embedding lookups decode rows exactly as the CPU reference does.</summary>
    public static void EmbeddingMatchesReference(BackendPair backends, WeightType type, FormatParameters parameters, int vocab, int dim) =>
        EmbeddingMatchesReference(backends, Encode(type, parameters, vocab, dim));

    /// <summary>Embedding lookups of a [vocab, dim] table encoded by the caller decode rows exactly as the CPU reference does.</summary>
    public static void EmbeddingMatchesReference(BackendPair backends, EncodedTensor encoded)
    {
        var parameters = encoded.Info.Parameters;
        int vocab = (int)encoded.Info.Rows, dim = (int)encoded.Info.Columns;
        using var shared = new InMemoryTensors(encoded.Companions);
        int[] tokens = [0, vocab - 1, vocab / 2, vocab / 2, 1 % vocab];
        var (cpu, gpu) = Both(backends, be =>
        {
            var o = be.Allocate(tokens.Length * dim);
            be.Embedding(be.UploadMatrix(encoded.Info, encoded.Data, shared), tokens, o);
            return o;
        }, tokens.Length * dim);
        AssertClose(cpu, gpu, 1e-6, $"{encoded.Info.Format.Name} {parameters} embedding");
    }

    /// <summary>
    /// The expert-indexed product (<see cref="IBackend.ExpertLinear"/>) over the stack <paramref name="stack"/> builds on
    /// each backend, routed by <see cref="IBackend.MoeRoute"/> from random logits, on Vulkan against the CPU reference:
    /// one token with its input shared by its <paramref name="k"/> slots (the mat-vec variant), then a batch with an
    /// input per slot (the mat-mat variant).
    /// </summary>
    public static void ExpertLinearMatchesReference(BackendPair backends, Func<IBackend, IWeightMatrix> stack, int experts, int rows, int columns, int k)
    {
        var stacks = new Dictionary<IBackend, IWeightMatrix> { [backends.Cpu] = stack(backends.Cpu), [backends.Vulkan] = stack(backends.Vulkan) };
        foreach (var (tokens, inputPerSlot) in new[] { (1, false), (9, true) })
        {
            float[] logits = RandomValues(tokens * experts, 4);
            float[] x = RandomValues(tokens * (inputPerSlot ? k : 1) * columns);
            var (cpu, gpu) = Both(backends, be =>
            {
                var routing = be.Allocate(MoeRouting.Length(tokens, k, experts));
                be.MoeRoute(be.UploadVector(logits), routing, tokens, experts, k, normalize: true, scale: 1f);
                var y = be.Allocate(tokens * k * rows);
                be.ExpertLinear(stacks[be], experts, routing, be.UploadVector(x), y, tokens, k, inputPerSlot);
                return y;
            }, tokens * k * rows);
            AssertClose(cpu, gpu, 1e-4, $"{WeightTypes.Get(stacks[backends.Vulkan].Type).Name} {stacks[backends.Vulkan].Parameters} expert linear, {tokens} token(s) to {k} of {experts} experts, input per slot {inputPerSlot}");
        }
    }

    /// <summary>Bits per weight measured from the bytes written (companions counted) against the expected figure.</summary>
    public static double MeasuredBitsPerWeight(EncodedTensor encoded, bool countCompanions = true) =>
        (encoded.Data.Length + (countCompanions ? encoded.Companions.Sum(c => (long)c.Data.Length) : 0)) * 8.0 / encoded.Info.ElementCount;

    /// <summary>Runs the same op on both backends over the same inputs and returns (reference, vulkan) outputs.</summary>
    public static (float[] Cpu, float[] Vulkan) Both(BackendPair backends, Func<IBackend, ITensor> op, int outputLength)
    {
        var cpu = new float[outputLength];
        var gpu = new float[outputLength];
        backends.Cpu.Read(op(backends.Cpu), cpu);
        backends.Vulkan.Read(op(backends.Vulkan), gpu);
        return (cpu, gpu);
    }

    public static void AssertClose(float[] expected, float[] actual, double relativeTolerance, string what)
    {
        double scale = Math.Max(1.0, expected.Max(v => Math.Abs((double)v)));
        int worst = 0;
        double worstError = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs((double)expected[i] - actual[i]);
            if (double.IsNaN(error) || error > worstError) (worst, worstError) = (i, double.IsNaN(error) ? double.PositiveInfinity : error);
        }
        Assert.True(worstError <= relativeTolerance * scale,
            $"{what}: element {worst} is {actual[worst]}, reference {expected[worst]} (error {worstError:G3}, allowed {relativeTolerance * scale:G3})");
    }
}
