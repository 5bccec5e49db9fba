using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Runtime.Vulkan;
using Engine.Tests.Runtime;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Formats;

public sealed class LowRankFormatTests(BackendPair backends, ITestOutputHelper output) : IClassFixture<BackendPair>
{
    private const int Rows = 67, Columns = 515, Rank = 13;

    /// <summary>The residual's format: q4 when registered (the useful pairing), else bf16.</summary>
    private static WeightType ResidualType => WeightTypes.TryGet("q4", out var q4) ? q4.Type : WeightType.BF16;

    /// <summary>The experts' V format: binary when registered (MoBiE), else f16.</summary>
    private static WeightType ExpertType => WeightTypes.TryGet(WeightType.Binary, out _) ? WeightType.Binary : WeightType.F16;

    // Vulkan against the CPU reference (every op, with and without a residual, factors in several formats): WeightFormatParityTests.

    [Theory]
    [InlineData(5, false, "f16")]
    [InlineData(5, true, "f16")]
    [InlineData(1, false, "bf16")]
    [InlineData(70, false, "q8")]
    [InlineData(5, false, "binary")]
    public void Cpu_linear_with_a_residual_or_factors_in_any_format_is_the_dense_decode(int tokens, bool residual, string factorFormat)
    {
        if (!WeightTypes.TryGet(factorFormat, out var format)) return; // not on this branch
        var encoder = new LowRankEncoder { FactorFormat = format.Type, ResidualFormat = residual ? ResidualType : null };
        var encoded = encoder.Encode("w", WeightFormatChecks.RandomValues(Rows * Columns), Rows, Columns, new FormatParameters(Rank: Rank));
        Assert.Equal(residual ? 3 : 2, encoded.Companions.Count);
        Assert.All(encoded.Companions.Where(c => c.Info.Name != "w.residual"), c => Assert.Equal(format.Type, c.Info.Type));
        LinearIsDecodeThenMultiply(encoded, tokens);
    }

    [Fact]
    public void Cpu_linear_is_decode_then_multiply() =>
        WeightFormatChecks.CpuLinearIsDecodeThenMultiply(backends, WeightType.LowRank, new FormatParameters(Rank: 5), 9, 77);

    [Fact]
    public void A_vulkan_low_rank_linear_with_residual_needs_one_host_wait()
    {
        var encoded = new LowRankEncoder { ResidualFormat = ResidualType }.Encode("w", WeightFormatChecks.RandomValues(Rows * Columns), Rows, Columns, new FormatParameters(Rank: Rank));
        using var shared = new InMemoryTensors(encoded.Companions);
        var vulkan = backends.Vulkan;
        var matrix = vulkan.UploadMatrix(encoded.Info, encoded.Data, shared);
        var x = vulkan.UploadVector(WeightFormatChecks.RandomValues(3 * Columns));
        var bias = vulkan.UploadVector(WeightFormatChecks.RandomValues(Rows));
        var y = vulkan.Allocate(3 * Rows);
        var result = new float[3 * Rows];
        vulkan.Linear(matrix, bias, x, y, 3); // the first call allocates its scratch
        vulkan.Read(y, result);

        vulkan.Recorder.ResetCounters();
        vulkan.Linear(matrix, bias, x, y, 3);
        vulkan.Read(y, result);
        Assert.Equal(1, vulkan.Recorder.HostWaits);
        Assert.Equal(4, vulkan.Recorder.DispatchCount); // V x, U t + bias, R x, add
    }

    [Fact]
    public void An_exactly_low_rank_matrix_is_recovered()
    {
        const int rows = 129, columns = 300, rank = 7;
        float[] w = ExactlyLowRank(rows, columns, rank, new Random(3));
        var svd = TruncatedSvd.Compute(w, rows, columns, rank);
        Assert.True(svd.RelativeError < 1e-6, $"float64 SVD error {svd.RelativeError:G3}");
        for (int i = 1; i < rank; i++) Assert.True(svd.SingularValues[i] <= svd.SingularValues[i - 1]);

        var encoded = new LowRankEncoder { FactorFormat = WeightType.F32 }.Encode("w", w, rows, columns, new FormatParameters(Rank: rank));
        double error = RelativeError(w, WeightFormatChecks.Decode(encoded));
        output.WriteLine($"rank-{rank} [{rows}, {columns}]: SVD {svd.RelativeError:G3}, f32 factors {error:G3}");
        Assert.True(error < 1e-5, $"relative error {error:G3} with f32 factors");
    }

    [Fact]
    public void The_error_falls_as_the_rank_rises_and_vanishes_at_full_rank()
    {
        const int rows = 97, columns = 143;
        float[] w = WeightFormatChecks.RandomValues(rows * columns);
        // The full decomposition gives every singular value, hence the best error at each rank (Eckart–Young).
        var sigma = TruncatedSvd.Compute(w, rows, columns, rows).SingularValues;
        double total = sigma.Sum(s => s * s);
        double previous = double.PositiveInfinity;
        foreach (int rank in new[] { 1, 4, 16, 48, rows })
        {
            var encoded = new LowRankEncoder { FactorFormat = WeightType.F32 }.Encode("w", w, rows, columns, new FormatParameters(Rank: rank));
            double error = RelativeError(w, WeightFormatChecks.Decode(encoded));
            double svd = TruncatedSvd.Compute(w, rows, columns, rank).RelativeError;
            double best = Math.Sqrt(sigma.Skip(rank).Sum(s => s * s) / total);
            output.WriteLine($"rank {rank}: relative Frobenius error {error:G4} (float64 SVD {svd:G4}, best possible {best:G4})");
            Assert.True(error < previous, $"rank {rank}: error {error} is not below {previous}");
            Assert.Equal(svd, error, 1e-5);
            Assert.InRange(svd, best - 1e-9, best * 1.01 + 1e-9);
            previous = error;
        }
        Assert.True(previous < 1e-5, $"full rank leaves {previous:G3}");
    }

    [Fact]
    public void Bits_per_weight_are_the_factors_bytes()
    {
        var encoded = WeightFormatChecks.Encode(WeightType.LowRank, new FormatParameters(Rank: Rank), Rows, Columns);
        double expected = (Rows * Rank + Rank * Columns) * 16.0 / (Rows * Columns);
        Assert.Empty(encoded.Data);
        Assert.Equal(expected, WeightFormatChecks.MeasuredBitsPerWeight(encoded), 12);

        // The file summary counts the factors as the tensor's companions.
        var bytes = encoded.Companions.Append(encoded.Tensor).ToDictionary(t => t.Info.Name, t => (long)t.Data.Length);
        var sizes = StoredSizes.Of([.. encoded.Companions.Select(c => c.Info), encoded.Info], name => bytes[name]);
        Assert.Equal(expected, Assert.Single(sizes.Weights).BitsPerWeight, 12);
        Assert.Equal(new[] { "w.u", "w.v" }, sizes.Companions.Select(c => c.Info.Name).Order());
        output.WriteLine($"lowrank r{Rank} f16 [{Rows}, {Columns}]: {expected:F3} bits per weight");
    }

    [Fact]
    public void The_default_rank_stores_a_quarter_of_the_f16_size()
    {
        var encoded = WeightFormatChecks.Encode(WeightType.LowRank, default, Rows, Columns);
        int rank = encoded.Info.Parameters.Rank;
        Assert.Equal((int)Math.Round(Rows * Columns / (4.0 * (Rows + Columns))), rank);
        double bits = WeightFormatChecks.MeasuredBitsPerWeight(encoded);
        double perRank = (Rows + Columns) * 16.0 / (Rows * Columns);
        Assert.InRange(bits, 4 - perRank / 2, 4 + perRank / 2);
        output.WriteLine($"default rank of [{Rows}, {Columns}]: {rank}, {bits:F3} bits per weight");
    }

    [Fact]
    public void Mobie_experts_share_one_u_and_decode_as_u_times_their_own_v()
    {
        const int experts = 4, rows = 67, columns = 77, rank = 12;
        var names = Enumerable.Range(0, experts).Select(e => $"mlp.experts.{e}.up_proj.weight").ToArray();
        var values = names.Select(_ => WeightFormatChecks.RandomValues(rows * columns)).ToArray();
        var encoding = new MobieEncoder(rank) { ExpertFormat = ExpertType }.Encode("mlp.experts.up_proj.shared_u", [.. names.Zip(values)], rows, columns);
        output.WriteLine($"MoBiE {experts} experts [{rows}, {columns}] rank {rank}, V in {WeightTypes.Get(ExpertType).Name}: relative error {encoding.RelativeError:G4}");

        var tensors = encoding.Tensors();
        Assert.Equal(tensors.Count, tensors.Select(t => t.Info.Name).Distinct().Count());
        Assert.Single(tensors, t => t.Info.Name == "mlp.experts.up_proj.shared_u");
        Assert.Equal(1 + 2 * experts, tensors.Count);
        using var source = new InMemoryTensors(tensors);
        float[] shared = source.ReadFloat32("mlp.experts.up_proj.shared_u");
        for (int e = 0; e < experts; e++)
        {
            var expert = encoding.Experts[e];
            Assert.Equal(new FormatParameters(Rank: rank, Reference: "mlp.experts.up_proj.shared_u"), expert.Info.Parameters);
            Assert.Same(encoding.Shared.Tensor, expert.Companions.Single(c => c.Info.Name == "mlp.experts.up_proj.shared_u"));
            Assert.Equal(ExpertType, expert.Companions.Single(c => c.Info.Name == names[e] + ".v").Info.Type);
            float[] v = source.ReadFloat32(names[e] + ".v");
            float[] decoded = source.ReadFloat32(names[e]);
            var product = new float[rows * columns];
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < columns; c++)
                {
                    double sum = 0;
                    for (int k = 0; k < rank; k++) sum += (double)shared[r * rank + k] * v[k * columns + c];
                    product[r * columns + c] = (float)sum;
                }
            }
            Assert.Equal(product, decoded);
        }

        // Written as one file, the summary stores the shared factor once and counts it toward no single expert.
        var sizes = StoredSizes.Of([.. tensors.Select(t => t.Info)], name => source.ReadBytes(name).Length);
        Assert.Equal(experts, sizes.Weights.Count);
        Assert.Equal(tensors.Sum(t => (long)t.Data.Length), sizes.TotalBytes);
    }

    [Fact]
    public void Mobie_recovers_experts_of_one_joint_low_rank_space()
    {
        const int experts = 3, rows = 67, columns = 77, rank = 9;
        var random = new Random(11);
        float[] basis = Gaussian(rows * rank, random);
        var values = Enumerable.Range(0, experts).Select(_ => Multiply(basis, Gaussian(rank * columns, random), rows, rank, columns)).ToArray();
        var encoding = new MobieEncoder(rank) { SharedFormat = WeightType.F32, ExpertFormat = WeightType.F32 }
            .Encode("shared", [.. values.Select((v, e) => ($"expert{e}", v))], rows, columns);
        Assert.True(encoding.RelativeError < 1e-5, $"joint relative error {encoding.RelativeError:G3}");
    }

    [Fact]
    public void A_shared_u_is_uploaded_once_per_backend_and_source()
    {
        const int experts = 3, rows = 129, columns = 77, rank = 16;
        var names = Enumerable.Range(0, experts).Select(e => $"experts.{e}.down_proj.weight").ToArray();
        var encoding = new MobieEncoder(rank) { ExpertFormat = ExpertType }
            .Encode("experts.down_proj.shared_u", [.. names.Select(n => (n, WeightFormatChecks.RandomValues(rows * columns)))], rows, columns);
        using var source = new CountingSource(new InMemoryTensors(encoding.Tensors()));
        float[] x = WeightFormatChecks.RandomValues(columns);
        var results = new List<float[]>();
        foreach (IBackend backend in new IBackend[] { backends.Cpu, backends.Vulkan })
        {
            var matrices = encoding.Experts.Select(e => Assert.IsType<LowRankMatrix>(backend.UploadMatrix(e.Info, e.Data, source))).ToList();
            Assert.All(matrices, m => Assert.Same(matrices[0].U, m.U));
            Assert.All(matrices, m => Assert.Equal(m.U.ByteSize + m.V.ByteSize, m.ByteSize));
            var input = backend.UploadVector(x);
            foreach (var matrix in matrices)
            {
                var y = backend.Allocate(rows);
                backend.Linear(matrix, null, input, y, 1);
                var values = new float[rows];
                backend.Read(y, values);
                results.Add(values);
            }
        }
        Assert.Equal(2, source.Reads["experts.down_proj.shared_u"]);
        Assert.All(names, n => Assert.Equal(2, source.Reads[n + ".v"]));
        for (int e = 0; e < experts; e++)
            WeightFormatChecks.AssertClose(results[e], results[experts + e], 1e-4, $"expert {e}, Vulkan against CPU");
    }

    [Theory]
    [InlineData(0, "rank 0")]
    [InlineData(68, "rank 68")]
    [InlineData(-1, "rank -1")]
    public void A_bad_rank_is_a_clear_error(int rank, string message)
    {
        var encoded = WeightFormatChecks.Encode(WeightType.LowRank, new FormatParameters(Rank: 5), Rows, 100);
        using var shared = new InMemoryTensors(encoded.Companions);
        var info = encoded.Info with { Parameters = new FormatParameters(Rank: rank) };
        foreach (IBackend backend in new IBackend[] { backends.Cpu, backends.Vulkan })
        {
            var error = Assert.Throws<InvalidDataException>(() => backend.UploadMatrix(info, [], shared));
            Assert.Contains(message, error.Message);
            Assert.Contains("'w'", error.Message);
        }
        if (rank != 0) // the encoder takes 0 as "choose the rank"
            Assert.Contains(message, Assert.Throws<InvalidDataException>(() => new LowRankEncoder().Encode("w", new float[Rows * 100], Rows, 100, info.Parameters)).Message);
    }

    [Fact]
    public void A_missing_or_misshapen_factor_is_a_clear_error()
    {
        var encoded = new LowRankEncoder { ResidualFormat = WeightType.F16 }.Encode("w", WeightFormatChecks.RandomValues(Rows * 100), Rows, 100, new FormatParameters(Rank: 5));
        foreach (string factor in new[] { "w.u", "w.v", "w.residual" })
        {
            using var missing = new InMemoryTensors(encoded.Companions.Where(c => c.Info.Name != factor));
            foreach (IBackend backend in new IBackend[] { backends.Cpu, backends.Vulkan })
            {
                var error = Assert.Throws<InvalidDataException>(() => backend.UploadMatrix(encoded.Info, encoded.Data, missing));
                Assert.Contains($"needs factor '{factor}'", error.Message);
                Assert.Contains("'w'", error.Message);
            }
            Assert.Throws<InvalidDataException>(() => WeightFormatChecks.Decode(encoded with { Companions = [.. encoded.Companions.Where(c => c.Info.Name != factor)] }));
        }

        var wrongRank = encoded.Info with { Parameters = encoded.Info.Parameters with { Rank = 4 } };
        using var shared = new InMemoryTensors(encoded.Companions);
        Assert.Contains("factor 'w.u' has shape [67, 5], expected [67, 4]",
            Assert.Throws<InvalidDataException>(() => backends.Cpu.UploadMatrix(wrongRank, [], shared)).Message);
        Assert.Contains("no tensor source",
            Assert.Throws<InvalidDataException>(() => backends.Vulkan.UploadMatrix(encoded.Info, [], null)).Message);
        Assert.Throws<InvalidDataException>(() => backends.Cpu.UploadMatrix(encoded.Info, new byte[4], shared));
    }

    // The backends' refusal of a low-rank embedding table, naming it: WeightFormatParityTests.

    [Fact]
    public void The_formula_keeps_embedding_tables_out_of_low_rank() =>
        // The quantizer's rule for targets below 8 bits keeps tables out of low-rank, which no backend can look rows up in.
        Assert.True(LowRankFormat.Instance.BitsPerWeight(default) < 8);

    /// <summary>The CPU reference's y = W x + bias against the dense CPU decode of W multiplied in float64.</summary>
    private void LinearIsDecodeThenMultiply(EncodedTensor encoded, int tokens)
    {
        int rows = (int)encoded.Info.Rows, columns = (int)encoded.Info.Columns;
        float[] w = WeightFormatChecks.Decode(encoded);
        float[] x = WeightFormatChecks.RandomValues(tokens * columns);
        float[] bias = WeightFormatChecks.RandomValues(rows);
        var expected = new float[tokens * rows];
        for (int t = 0; t < tokens; t++)
        {
            for (int r = 0; r < rows; r++)
            {
                double sum = bias[r];
                for (int c = 0; c < columns; c++) sum += (double)w[r * columns + c] * x[t * columns + c];
                expected[t * rows + r] = (float)sum;
            }
        }
        using var shared = new InMemoryTensors(encoded.Companions);
        var backend = backends.Cpu;
        var y = backend.Allocate(tokens * rows);
        backend.Linear(backend.UploadMatrix(encoded.Info, encoded.Data, shared), backend.UploadVector(bias), backend.UploadVector(x), y, tokens);
        var actual = new float[tokens * rows];
        backend.Read(y, actual);
        WeightFormatChecks.AssertClose(expected, actual, 1e-4, $"{backend.Name} {encoded.Info.Parameters} linear {tokens} tokens against the dense decode");
    }

    private static float[] ExactlyLowRank(int rows, int columns, int rank, Random random) =>
        Multiply(Gaussian(rows * rank, random), Gaussian(rank * columns, random), rows, rank, columns);

    private static float[] Gaussian(int count, Random random) =>
        [.. Enumerable.Range(0, count).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble())))];

    private static float[] Multiply(float[] a, float[] b, int rows, int inner, int columns)
    {
        var product = new float[rows * columns];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < columns; c++)
            {
                double sum = 0;
                for (int k = 0; k < inner; k++) sum += (double)a[r * inner + k] * b[k * columns + c];
                product[r * columns + c] = (float)sum;
            }
        }
        return product;
    }

    private static double RelativeError(float[] expected, float[] actual)
    {
        double difference = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)expected[i] - actual[i];
            difference += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(difference / norm);
    }

    /// <summary>A tensor source that counts the reads of each tensor.</summary>
    private sealed class CountingSource(ITensorSource inner) : ITensorSource
    {
        public Dictionary<string, int> Reads { get; } = [];

        public IReadOnlyList<TensorInfo> Tensors => inner.Tensors;

        public bool TryGet(string name, out TensorInfo info) => inner.TryGet(name, out info);

        public byte[] ReadBytes(string name)
        {
            Reads[name] = Reads.GetValueOrDefault(name) + 1;
            return inner.ReadBytes(name);
        }

        public void Dispose() => inner.Dispose();
    }
}
