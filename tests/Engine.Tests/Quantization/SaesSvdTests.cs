using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers;
using Engine.Quantizers.Calibration;
using Engine.Quantizers.Methods;
using Engine.Runtime;
using Xunit;

namespace Engine.Tests.Quantization;

/// <summary>
/// SAES-SVD on small random layers (fresh data each run; the seed is in the messages), against an independent
/// computation: the whitening by the symmetric square root of G (any square root gives the same optimum) and truncation
/// through the eigenvectors of TᵀT, both by a plain Jacobi eigensolver here. And the cross moment calibration collects.
/// </summary>
public sealed class SaesSvdTests
{
    private const int Rows = 48, Columns = 40, Rank = 10, Tokens = 400;
    private const double Damping = 0.01;

    /// <summary>Inputs with correlated channels and uneven scales: x = A z, z standard normal, A random, some channels scaled up.</summary>
    private static double[] CorrelatedInputs(Random random, double correlation)
    {
        var mix = new double[Columns * Columns];
        for (int i = 0; i < Columns; i++)
        {
            for (int j = 0; j < Columns; j++) mix[i * Columns + j] = (i == j ? 1 : 0) + correlation * Normal(random) / Math.Sqrt(Columns);
        }
        var x = new double[Tokens * Columns];
        var z = new double[Columns];
        for (int t = 0; t < Tokens; t++)
        {
            for (int i = 0; i < Columns; i++) z[i] = Normal(random);
            for (int i = 0; i < Columns; i++)
            {
                double sum = 0;
                for (int j = 0; j < Columns; j++) sum += mix[i * Columns + j] * z[j];
                x[t * Columns + i] = sum * (i % 5 == 0 ? 6 : 1);
            }
        }
        return x;
    }

    private static double Normal(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static float[] RandomMatrix(Random random) => [.. Enumerable.Range(0, Rows * Columns).Select(_ => (float)Normal(random))];

    private static float[] ToSingle(double[] values) => [.. values.Select(v => (float)v)];

    /// <summary>The statistics of quantized-model inputs <paramref name="x"/> with full-precision inputs <paramref name="fullPrecision"/>, added in two batches.</summary>
    private static InputStatistics Statistics(double[] fullPrecision, double[] x)
    {
        var statistics = new InputStatistics(Columns);
        int half = Tokens / 2 * Columns;
        float[] q = ToSingle(x), f = ToSingle(fullPrecision);
        statistics.Add(q.AsSpan(0, half), Tokens / 2);
        statistics.AddCross(f.AsSpan(0, half), q.AsSpan(0, half), Tokens / 2);
        statistics.Add(q.AsSpan(half), Tokens - Tokens / 2);
        statistics.AddCross(f.AsSpan(half), q.AsSpan(half), Tokens - Tokens / 2);
        return statistics;
    }

    /// <summary>mean aᵀb over tokens, [Columns, Columns].</summary>
    private static double[] Moment(double[] a, double[] b)
    {
        var m = new double[Columns * Columns];
        for (int t = 0; t < Tokens; t++)
        {
            for (int i = 0; i < Columns; i++)
            {
                for (int j = 0; j < Columns; j++) m[i * Columns + j] += a[t * Columns + i] * b[t * Columns + j] / Tokens;
            }
        }
        return m;
    }

    private static double[] Multiply(double[] a, double[] b, int rows, int inner, int columns)
    {
        var c = new double[rows * columns];
        for (int i = 0; i < rows; i++)
        {
            for (int k = 0; k < inner; k++)
            {
                for (int j = 0; j < columns; j++) c[i * columns + j] += a[i * inner + k] * b[k * columns + j];
            }
        }
        return c;
    }

    private static double[] Transpose(double[] a, int rows, int columns)
    {
        var t = new double[a.Length];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < columns; j++) t[j * rows + i] = a[i * columns + j];
        }
        return t;
    }

    /// <summary>Eigenvalues (descending) and eigenvectors (columns of Q, same order) of a symmetric matrix, by cyclic Jacobi rotations.</summary>
    private static (double[] Values, double[] Q) Eigen(double[] symmetric, int n)
    {
        var a = (double[])symmetric.Clone();
        var q = new double[n * n];
        for (int i = 0; i < n; i++) q[i * n + i] = 1;
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0;
            for (int p = 0; p < n; p++)
            {
                for (int r = p + 1; r < n; r++) off += a[p * n + r] * a[p * n + r];
            }
            if (off < 1e-26) break;
            for (int p = 0; p < n; p++)
            {
                for (int r = p + 1; r < n; r++)
                {
                    if (a[p * n + r] == 0) continue;
                    double angle = 0.5 * Math.Atan2(2 * a[p * n + r], a[r * n + r] - a[p * n + p]);
                    double c = Math.Cos(angle), s = Math.Sin(angle);
                    for (int k = 0; k < n; k++)
                    {
                        double akp = a[k * n + p], akr = a[k * n + r];
                        a[k * n + p] = c * akp - s * akr;
                        a[k * n + r] = s * akp + c * akr;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double apk = a[p * n + k], ark = a[r * n + k];
                        a[p * n + k] = c * apk - s * ark;
                        a[r * n + k] = s * apk + c * ark;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double qkp = q[k * n + p], qkr = q[k * n + r];
                        q[k * n + p] = c * qkp - s * qkr;
                        q[k * n + r] = s * qkp + c * qkr;
                    }
                }
            }
        }
        int[] order = [.. Enumerable.Range(0, n).OrderByDescending(i => a[i * n + i])];
        var sorted = new double[n * n];
        for (int k = 0; k < n; k++)
        {
            for (int i = 0; i < n; i++) sorted[i * n + k] = q[i * n + order[k]];
        }
        return ([.. order.Select(i => a[i * n + i])], sorted);
    }

    /// <summary>G_λ^{power} for the damped G_λ = G + λI, λ = damping · mean diag G, through its eigenvectors.</summary>
    private static double[] DampedPower(double[] g, double power)
    {
        double lambda = Damping * Enumerable.Range(0, Columns).Average(i => g[i * Columns + i]);
        var damped = (double[])g.Clone();
        for (int i = 0; i < Columns; i++) damped[i * Columns + i] += lambda;
        var (values, q) = Eigen(damped, Columns);
        var scaled = new double[q.Length];
        for (int i = 0; i < Columns; i++)
        {
            for (int k = 0; k < Columns; k++) scaled[i * Columns + k] = q[i * Columns + k] * Math.Pow(values[k], power);
        }
        return Multiply(scaled, Transpose(q, Columns, Columns), Columns, Columns, Columns);
    }

    /// <summary>The reference: T = M G_λ^{-1/2} truncated to rank r through TᵀT's top eigenvectors V_r, W' = T V_r V_rᵀ G_λ^{-1/2}, and the energy kept.</summary>
    private static (double[] Compressed, double KeptEnergy) Reference(float[] w, double[] g, double[] c, double beta)
    {
        double lambda = Damping * Enumerable.Range(0, Columns).Average(i => g[i * Columns + i]);
        var target = (double[])g.Clone();
        for (int i = 0; i < target.Length; i++) target[i] = (g[i] + beta * c[i] + (i % (Columns + 1) == 0 ? lambda : 0)) / (1 + beta);
        var m = Multiply([.. w.Select(v => (double)v)], target, Rows, Columns, Columns);
        var t = Multiply(m, DampedPower(g, -0.5), Rows, Columns, Columns);
        var (values, q) = Eigen(Multiply(Transpose(t, Rows, Columns), t, Columns, Rows, Columns), Columns);
        var projector = new double[Columns * Columns];
        for (int i = 0; i < Columns; i++)
        {
            for (int j = 0; j < Columns; j++)
            {
                for (int k = 0; k < Rank; k++) projector[i * Columns + j] += q[i * Columns + k] * q[j * Columns + k];
            }
        }
        var truncated = Multiply(t, projector, Rows, Columns, Columns);
        return (Multiply(truncated, DampedPower(g, -0.5), Rows, Columns, Columns), values.Take(Rank).Sum() / values.Sum());
    }

    private static double[] Product(SaesFactors factors) => Multiply(factors.U, factors.V, Rows, Rank, Columns);

    private static double RelativeDifference(double[] a, double[] b) =>
        Math.Sqrt(a.Zip(b, (x, y) => (x - y) * (x - y)).Sum() / b.Sum(y => y * y));

    /// <summary>Σ_t ‖W x⁰_t − W' x_t‖² over the tokens.</summary>
    private static double OutputError(float[] w, double[] compressed, double[] fullPrecision, double[] x)
    {
        double error = 0;
        for (int t = 0; t < Tokens; t++)
        {
            for (int r = 0; r < Rows; r++)
            {
                double d = 0;
                for (int i = 0; i < Columns; i++) d += w[r * Columns + i] * fullPrecision[t * Columns + i] - compressed[r * Columns + i] * x[t * Columns + i];
                error += d * d;
            }
        }
        return error;
    }

    private static double[] Decode(EncodedTensor encoded)
    {
        var decoded = new float[Rows * Columns];
        using (var shared = new InMemoryTensors(encoded.Companions))
            LowRankFormat.Instance.Decode(encoded.Info, encoded.Data, decoded, shared);
        return [.. decoded.Select(v => (double)v)];
    }

    [Fact]
    public void With_beta_0_and_no_cross_term_it_is_the_whitened_truncated_svd()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        float[] w = RandomMatrix(random);
        var x = CorrelatedInputs(random, correlation: 3);
        var statistics = Statistics(x, x);
        var g = statistics.Mean();

        var factors = SaesSvd.Factorize(w, Rows, Columns, g, statistics.CrossMean(), Rank, [0], Damping);
        var (expected, _) = Reference(w, Moment(x, x), Moment(x, x), beta: 0);
        double difference = RelativeDifference(Product(factors), expected);
        Assert.True(difference < 2e-3, $"seed {seed}: W' differs from the whitened truncated SVD by {difference:G3} (relative)");
        Assert.Equal(0, factors.Beta);
    }

    [Fact]
    public void On_correlated_inputs_its_output_error_is_below_plain_truncated_svd_at_the_same_rank()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        float[] w = RandomMatrix(random);
        var x = CorrelatedInputs(random, correlation: 3);
        var parameters = new FormatParameters(Rank: Rank);

        var saes = Decode(new SaesSvd(new SaesOptions()).Encode("w", w, Rows, Columns, parameters, Statistics(x, x)));
        var plain = Decode(new LowRankEncoder().Encode("w", w, Rows, Columns, parameters));
        double saesError = OutputError(w, saes, x, x), plainError = OutputError(w, plain, x, x);
        Assert.True(saesError < 0.9 * plainError, $"seed {seed}: ‖WX − W'X‖² {saesError:G4} (saes-svd) against {plainError:G4} (plain SVD)");
    }

    [Fact]
    public void Aces_picks_the_beta_whose_whitened_target_keeps_the_most_energy()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        float[] w = RandomMatrix(random);
        var fullPrecision = CorrelatedInputs(random, correlation: 3);
        // The quantized model's input: the full-precision one drifted by an error correlated with it, plus noise.
        var drift = new double[Columns * Columns];
        for (int i = 0; i < drift.Length; i++) drift[i] = (i % (Columns + 1) == 0 ? 1 : 0) + 0.3 * Normal(random) / Math.Sqrt(Columns);
        var x = Multiply(fullPrecision, drift, Tokens, Columns, Columns);
        for (int i = 0; i < x.Length; i++) x[i] += 0.3 * Normal(random);
        var statistics = Statistics(fullPrecision, x);

        var chosen = SaesSvd.Factorize(w, Rows, Columns, statistics.Mean(), statistics.CrossMean(), Rank, SaesSvd.AcesBetas, Damping);
        double[] g = Moment(x, x), c = Moment(fullPrecision, x);
        var expected = SaesSvd.AcesBetas.Select(beta => Reference(w, g, c, beta).KeptEnergy).ToArray();
        for (int b = 0; b < expected.Length; b++)
            Assert.True(Math.Abs(chosen.KeptEnergy[b] - expected[b]) < 1e-3, $"seed {seed}: β {SaesSvd.AcesBetas[b]} keeps {chosen.KeptEnergy[b]:G6}, expected {expected[b]:G6}");
        // Energies within the SVD's tolerance of the best count as ties.
        Assert.True(expected[SaesSvd.AcesBetas.ToList().IndexOf(chosen.Beta)] > expected.Max() - 1e-4,
            $"seed {seed}: chose β {chosen.Beta} of energies {string.Join(", ", expected.Select(e => e.ToString("G6")))}");

        // The chosen β's factors are the CEALC closed form at that β.
        var fixedBeta = SaesSvd.Factorize(w, Rows, Columns, statistics.Mean(), statistics.CrossMean(), Rank, [chosen.Beta], Damping);
        Assert.Equal(Product(fixedBeta), Product(chosen));
        double difference = RelativeDifference(Product(chosen), Reference(w, g, c, chosen.Beta).Compressed);
        Assert.True(difference < 2e-3, $"seed {seed}: W' at β {chosen.Beta} differs from the closed form by {difference:G3} (relative)");
    }

    [Fact]
    public void Cross_statistics_pair_the_full_precision_inputs_with_the_quantized_models()
    {
        using var source = ModelFile.Open(TestPaths.Shared("fixtures", "hf-tiny", "llama"));
        var options = new CalibrationOptions { Windows = 2, Context = 12, Backend = BackendKind.Cpu, Seed = Random.Shared.Next() };
        int dim = source.Config.HiddenSize;
        const string first = "model.layers.0.self_attn.q_proj.weight", second = "model.layers.1.self_attn.q_proj.weight";
        var fullPrecision = new LayerCalibrator(source, options).StatisticsOf(second, dim)!.Mean();

        var calibrator = new LayerCalibrator(source, options, crossStatistics: true);
        // Nothing quantized yet: both models give the same inputs, so C = H.
        var layer0 = calibrator.StatisticsOf(first, dim)!;
        Assert.Equal(layer0.Mean(), layer0.CrossMean());
        var info = source.Tensors.Require("model.layers.0.self_attn.o_proj.weight");
        calibrator.Quantized(WeightEncoders.Encode(WeightType.Q2, info.Name, source.Tensors.ReadFloat32(info.Name), (int)info.Rows, (int)info.Columns));
        var layer1 = calibrator.StatisticsOf(second, dim)!;
        var h = layer1.Mean();
        var c = layer1.CrossMean()!;

        // C pairs the two models' inputs: neither model's own second moment, and bounded by both (Cauchy–Schwarz).
        Assert.NotEqual(h, c);
        Assert.NotEqual(fullPrecision, c);
        for (int i = 0; i < dim; i++)
        {
            for (int j = 0; j < dim; j++)
            {
                double bound = Math.Sqrt(fullPrecision[i * dim + i] * h[j * dim + j]);
                Assert.True(Math.Abs(c[i * dim + j]) <= bound * (1 + 1e-4) + 1e-9, $"C[{i}, {j}] = {c[i * dim + j]} exceeds {bound}");
            }
        }
    }
}
