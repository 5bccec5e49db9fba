using System.Numerics.Tensors;
using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers.Calibration;

namespace Engine.Quantizers.Methods;

/// <summary>SAES-SVD's settings: a fixed β (null: ACES chooses it per matrix) and the relative damping of G's diagonal.</summary>
public sealed record SaesOptions(double? Beta = null, double Damping = 0.01);

/// <summary>
/// SAES-SVD (Hu et al., ICLR 2026; METHODS.md §2) into the low-rank format: a rank-r W' fitted to the layer's input in
/// the compressed model, x (H's input), and to the full-precision model's output there, from input x⁰ (CEALC):
/// <code>
///   min_{rank W' ≤ r}  Σ_t ‖W x_t − W' x_t‖² + β Σ_t ‖W x⁰_t − W' x_t‖² + (1 + β) λ ‖W − W'‖²_F
/// </code>
/// the second term compensating the error the layers before have accumulated, the third the damping (λ = damping ·
/// mean diag G, which pulls W' towards W along directions the calibration never excited). With G = Σ x xᵀ,
/// C = Σ x⁰ xᵀ (per token, so the means scale alike) and G_λ = G + λI = L Lᵀ (Cholesky), the objective is
/// <code>
///   (1 + β) ‖W' L − M L⁻ᵀ‖²_F + const,   M = W (G_λ + β C) / (1 + β),
/// </code>
/// so W' = [M L⁻ᵀ]_r L⁻¹, [·]_r the truncated SVD U_r Σ_r V_rᵀ, stored as the factors U = U_r Σ_r and V = V_rᵀ L⁻¹.
/// M L⁻ᵀ = (W L + β W C L⁻ᵀ) / (1 + β), since W G_λ L⁻ᵀ = W L. ACES picks β on <see cref="AcesBetas"/> to maximise the
/// energy the rank keeps of the whitened target, ‖[M L⁻ᵀ]_r‖²_F / ‖M L⁻ᵀ‖²_F. Without the full-precision inputs (expert
/// products) the accumulated error is unknown, and the local term alone is fitted (β = 0: SVD-LLM's whitened SVD).
/// </summary>
public sealed class SaesSvd(SaesOptions options) : ICalibratedEncoder
{
    /// <summary>The β grid ACES searches.</summary>
    public static IReadOnlyList<double> AcesBetas { get; } = [0, 0.25, 0.5, 1, 2, 4];

    public WeightType Type => WeightType.LowRank;

    public string Method => "saes-svd";

    /// <summary>At β = 0 the full-precision inputs play no part, so calibration need not run the full-precision model.</summary>
    public bool NeedsCrossStatistics => options.Beta != 0;

    public EncodedTensor Encode(string name, ReadOnlySpan<float> values, int rows, int columns, FormatParameters parameters, InputStatistics statistics)
    {
        var w = values[..(rows * columns)].ToArray();
        var g = statistics.Mean();
        var c = statistics.CrossMean();
        IReadOnlyList<double> betas = c is null ? [0] : options.Beta is { } beta ? [beta] : AcesBetas;
        var encoder = (LowRankEncoder)WeightEncoders.Get(WeightType.LowRank);
        return encoder.Encode(name, w, rows, columns, parameters, rank =>
        {
            var factors = Factorize(w, rows, columns, g, c, rank, betas, options.Damping);
            return (factors.U, factors.V);
        });
    }

    /// <summary>The factors W' = U·V of the β of <paramref name="betas"/> whose whitened target keeps the most energy at the rank.</summary>
    /// <param name="g">G = mean x xᵀ [columns, columns].</param>
    /// <param name="c">C = mean x⁰ xᵀ [columns, columns]; null: only β = 0 may be asked for.</param>
    internal static SaesFactors Factorize(float[] w, int rows, int columns, double[] g, double[]? c, int rank, IReadOnlyList<double> betas, double damping)
    {
        if (c is null && betas.Any(b => b != 0)) throw new ArgumentException("β ≠ 0 needs the cross moment with the full-precision inputs");
        int n = columns;
        var l = DampedCholesky(g, n, damping);
        // The whitened targets' two parts: W L (local) and W C L⁻ᵀ (towards the full-precision output).
        var local = new double[rows * n];
        var cross = c is null ? null : new double[rows * n];
        Parallel.For(0, rows, r =>
        {
            var wRow = new double[n];
            TensorPrimitives.ConvertChecked<float, double>(w.AsSpan(r * n, n), wRow);
            var localRow = local.AsSpan(r * n, n);
            for (int i = 0; i < n; i++) Axpy(wRow[i], l.AsSpan(i * n, i + 1), localRow);
            if (cross is null) return;
            var crossRow = cross.AsSpan(r * n, n);
            for (int i = 0; i < n; i++) Axpy(wRow[i], c.AsSpan(i * n, n), crossRow);
            SolveLower(l, n, crossRow);
        });

        TruncatedSvd? best = null;
        int bestIndex = -1;
        var keptEnergy = new double[betas.Count];
        for (int b = 0; b < betas.Count; b++)
        {
            double beta = betas[b];
            var target = new float[rows * n];
            double total = 0;
            for (int i = 0; i < target.Length; i++)
            {
                double value = (local[i] + (beta == 0 ? 0 : beta * cross![i])) / (1 + beta);
                target[i] = (float)value;
                total += value * value;
            }
            var svd = TruncatedSvd.Compute(target, rows, n, rank);
            keptEnergy[b] = total > 0 ? svd.SingularValues.Sum(s => s * s) / total : 1;
            if (best is null || keptEnergy[b] > keptEnergy[bestIndex])
            {
                best = svd;
                bestIndex = b;
            }
        }

        // V = V_rᵀ L⁻¹, row by row: y L = v.
        var v = (double[])best!.Vt.Clone();
        Parallel.For(0, rank, j => SolveLowerTransposed(l, n, v.AsSpan(j * n, n)));
        return new SaesFactors(best.ScaledU, v, betas[bestIndex], keptEnergy);
    }

    /// <summary>L with G + λI = L Lᵀ (row-major, lower), λ = damping · mean diag G, growing tenfold while G + λI is not positive definite.</summary>
    private static double[] DampedCholesky(double[] g, int n, double damping)
    {
        double meanDiagonal = 0;
        for (int i = 0; i < n; i++) meanDiagonal += g[i * n + i];
        meanDiagonal /= n;
        // A product whose input was all zeros carries no output error: any W' fits, the damping keeps W' near W.
        if (meanDiagonal == 0) meanDiagonal = 1;
        for (int attempt = 0; attempt < 7; attempt++)
        {
            var l = (double[])g.Clone();
            double lambda = damping * Math.Pow(10, attempt) * meanDiagonal;
            for (int i = 0; i < n; i++) l[i * n + i] += lambda;
            if (Gptq.CholeskyLower(l, n)) return l;
        }
        throw new InvalidOperationException("the calibration second moment is not positive definite even after damping");
    }

    /// <summary>In place: x ← L⁻¹ x (forward substitution), i.e. a row m of M becomes the row of M L⁻ᵀ.</summary>
    private static void SolveLower(double[] l, int n, Span<double> x)
    {
        for (int i = 0; i < n; i++)
            x[i] = (x[i] - TensorPrimitives.Dot<double>(l.AsSpan(i * n, i), x[..i])) / l[i * n + i];
    }

    /// <summary>In place: y ← y L⁻¹ for a row y (back substitution through L's rows, each subtracted once its entry is known).</summary>
    private static void SolveLowerTransposed(double[] l, int n, Span<double> y)
    {
        for (int i = n - 1; i >= 0; i--)
        {
            y[i] /= l[i * n + i];
            Axpy(-y[i], l.AsSpan(i * n, i), y[..i]);
        }
    }

    /// <summary>y += alpha·x.</summary>
    private static void Axpy(double alpha, ReadOnlySpan<double> x, Span<double> y)
    {
        if (alpha != 0) TensorPrimitives.MultiplyAdd(x, alpha, y[..x.Length], y[..x.Length]);
    }
}

/// <summary>SAES-SVD's factors W' = U·V (U [rows, rank], V [rank, columns]), the β they were fitted with, and the energy each β of the grid kept.</summary>
internal sealed record SaesFactors(double[] U, double[] V, double Beta, double[] KeptEnergy);
