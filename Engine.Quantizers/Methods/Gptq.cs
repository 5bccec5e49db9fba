using System.Numerics.Tensors;

namespace Engine.Quantizers.Methods;

/// <summary>
/// What GPTQ's error feedback drives: a quantizer of a few stored columns at a time, whose rounding error the
/// remaining columns absorb. Group integer formats quantize one column; a vector format would take its vector width.
/// </summary>
public interface IErrorFeedbackQuantizer
{
    /// <summary>Columns quantized together (1 for scalar formats).</summary>
    int Span { get; }

    /// <summary>
    /// Called at column <paramref name="column"/> (in stored order) with the whole matrix <paramref name="weights"/>
    /// ([rows][columns]) before that column is quantized: where a group quantizer fixes the grid of a group that
    /// starts there. Without act-order the matrix holds the current, error-updated weights; with act-order it is
    /// the original matrix, every column announced before any is quantized (static groups, so the stored layout
    /// is the same whatever order the columns are quantized in).
    /// </summary>
    void Prepare(int column, ReadOnlySpan<float> weights);

    /// <summary>
    /// Quantizes stored columns [column, column + Span) of every row: <paramref name="values"/> holds their current
    /// weights [rows][Span]; <paramref name="decoded"/> receives what the stored codes decode to.
    /// </summary>
    void Quantize(int column, ReadOnlySpan<float> values, Span<float> decoded);
}

/// <summary>GPTQ's settings: relative damping of H's diagonal, act-order (columns by decreasing H_ii), lazy-update block.</summary>
public sealed record GptqOptions(double Damping = 0.01, bool ActOrder = true, int BlockColumns = 128);

/// <summary>
/// GPTQ (Frantar et al. 2022): quantizes a matrix W [rows, columns] column by column, each column's rounding error,
/// weighted by the inverse of the input second moment H = E[x xᵀ], fed back into the columns not yet quantized,
/// which minimises the layer's output error tr(ΔW H ΔWᵀ) greedily. The inverse enters as the upper Cholesky factor
/// U of H⁻¹ (H⁻¹ = UᵀU); updates are applied lazily per block of columns.
/// </summary>
public static class Gptq
{
    /// <summary>Runs GPTQ; returns the quantized matrix as it decodes ([rows][columns], stored column order).</summary>
    /// <param name="hessian">H [columns, columns] (any positive scale), symmetric positive semi-definite.</param>
    public static float[] Quantize(ReadOnlySpan<float> weights, int rows, int columns, double[] hessian, IErrorFeedbackQuantizer quantizer, GptqOptions? options = null)
    {
        options ??= new GptqOptions();
        int n = columns, span = quantizer.Span;
        if (weights.Length != (long)rows * n) throw new ArgumentException($"{rows} x {n} weights expected, got {weights.Length}");
        if (hessian.Length != (long)n * n) throw new ArgumentException($"H must be {n} x {n}, got {hessian.Length} values");
        if (span < 1 || n % span != 0) throw new ArgumentException($"{n} columns do not split into spans of {span}");

        var h = (double[])hessian.Clone();
        var w = weights.ToArray();
        // Columns no calibration token reached (H_ii = 0) carry no output error: they are quantized as they are, and
        // a unit diagonal keeps the factorisation defined.
        for (int i = 0; i < n; i++)
        {
            if (h[i * n + i] == 0) h[i * n + i] = 1;
        }
        // Act-order permutes whole spans by their largest H_ii; the order is stored column order otherwise.
        int[] order = Enumerable.Range(0, n / span).ToArray();
        if (options.ActOrder)
        {
            var weight = order.Select(s => Enumerable.Range(s * span, span).Max(i => h[i * n + i])).ToArray();
            order = [.. order.OrderByDescending(s => weight[s]).ThenBy(s => s)];
            for (int c = 0; c < n; c += span) quantizer.Prepare(c, weights);
        }
        int[] perm = [.. order.SelectMany(s => Enumerable.Range(s * span, span))];
        var permuted = Permute(w, rows, n, perm);
        var u = InverseCholeskyUpper(PermuteSymmetric(h, n, perm), n, options.Damping);

        var decoded = new float[rows * n];
        var values = new float[rows * span];
        var q = new float[rows * span];
        var error = new float[rows * options.BlockColumns];
        for (int start = 0; start < n; start += options.BlockColumns)
        {
            int end = Math.Min(n, start + options.BlockColumns), width = end - start;
            for (int i = start; i < end; i += span)
            {
                int column = perm[i];
                if (!options.ActOrder) quantizer.Prepare(column, permuted);
                for (int r = 0; r < rows; r++) permuted.AsSpan(r * n + i, span).CopyTo(values.AsSpan(r * span, span));
                quantizer.Quantize(column, values, q);
                for (int j = 0; j < span; j++)
                {
                    int p = i + j;
                    float diagonal = u[p * n + p];
                    var tail = u.AsSpan(p * n + p + 1, end - p - 1);
                    for (int r = 0; r < rows; r++)
                    {
                        float target = q[r * span + j];
                        decoded[r * n + perm[p]] = target;
                        float e = (permuted[r * n + p] - target) / diagonal;
                        error[r * options.BlockColumns + (p - start)] = e;
                        // The rest of this block now, the columns after it once per block (below).
                        TensorPrimitives.MultiplyAdd(tail, -e, permuted.AsSpan(r * n + p + 1, tail.Length), permuted.AsSpan(r * n + p + 1, tail.Length));
                    }
                }
            }
            if (end == n) continue;
            Parallel.For(0, rows, r =>
            {
                var row = permuted.AsSpan(r * n + end, n - end);
                for (int k = 0; k < width; k++)
                {
                    float e = error[r * options.BlockColumns + k];
                    if (e != 0) TensorPrimitives.MultiplyAdd(u.AsSpan((start + k) * n + end, n - end), -e, row, row);
                }
            });
        }
        return decoded;
    }

    /// <summary>The layer error tr(ΔW H ΔWᵀ) = Σ_r Δw_r H Δw_rᵀ of a quantized matrix, the quantity GPTQ reduces.</summary>
    public static double LayerError(ReadOnlySpan<float> weights, ReadOnlySpan<float> quantized, int rows, int columns, double[] hessian)
    {
        var delta = new double[rows * columns];
        for (int i = 0; i < delta.Length; i++) delta[i] = (double)weights[i] - quantized[i];
        var perRow = new double[rows];
        Parallel.For(0, rows, r =>
        {
            var d = delta.AsSpan(r * columns, columns);
            double total = 0;
            for (int i = 0; i < columns; i++)
            {
                if (d[i] != 0) total += d[i] * TensorPrimitives.Dot<double>(hessian.AsSpan(i * columns, columns), d);
            }
            perRow[r] = total;
        });
        return perRow.Sum();
    }

    /// <summary>
    /// U, upper triangular with (H + λI)⁻¹ = UᵀU, λ = damping · mean(diag H), as float32 [n, n]. With J the reversal
    /// permutation and J(H + λI)J = LLᵀ, U = J L⁻¹ J: one Cholesky factorisation and one triangular inverse. Should
    /// the damped H still not be positive definite, the damping grows tenfold and it tries again.
    /// </summary>
    internal static float[] InverseCholeskyUpper(double[] h, int n, double damping)
    {
        double meanDiagonal = 0;
        for (int i = 0; i < n; i++) meanDiagonal += h[i * n + i];
        meanDiagonal /= n;
        for (int attempt = 0; ; attempt++)
        {
            double lambda = damping * Math.Pow(10, attempt) * meanDiagonal;
            var reversed = new double[n * n];
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < n; j++) reversed[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
                reversed[i * n + i] += lambda;
            }
            if (!CholeskyLower(reversed, n))
            {
                if (attempt < 6) continue;
                throw new InvalidOperationException("the calibration second moment is not positive definite even after damping");
            }
            var inverse = InvertLower(reversed, n);
            var u = new float[n * n];
            for (int i = 0; i < n; i++)
            {
                for (int j = i; j < n; j++) u[i * n + j] = (float)inverse[(n - 1 - i) * n + (n - 1 - j)];
            }
            return u;
        }
    }

    /// <summary>In place: the lower triangle becomes L with A = LLᵀ (the upper triangle is cleared); false if A is not positive definite.</summary>
    internal static bool CholeskyLower(double[] a, int n)
    {
        for (int i = 0; i < n; i++)
        {
            var rowI = a.AsSpan(i * n, n);
            for (int j = 0; j <= i; j++)
            {
                double sum = a[i * n + j] - TensorPrimitives.Dot<double>(rowI[..j], a.AsSpan(j * n, j));
                if (i == j)
                {
                    if (!(sum > 0)) return false;
                    a[i * n + i] = Math.Sqrt(sum);
                }
                else
                    a[i * n + j] = sum / a[j * n + j];
            }
            rowI[(i + 1)..].Clear();
        }
        return true;
    }

    /// <summary>L⁻¹ of a lower triangular L, row by row: row i of L⁻¹ = (eᵢ − Σ_{k&lt;i} L[i,k] · row k of L⁻¹) / L[i,i].</summary>
    private static double[] InvertLower(double[] l, int n)
    {
        var x = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            var row = x.AsSpan(i * n, i + 1);
            for (int k = 0; k < i; k++)
            {
                double factor = l[i * n + k];
                if (factor != 0) TensorPrimitives.MultiplyAdd<double>(x.AsSpan(k * n, i + 1), -factor, row, row);
            }
            row[i] += 1;
            TensorPrimitives.Divide<double>(row, l[i * n + i], row);
        }
        return x;
    }

    private static float[] Permute(float[] w, int rows, int n, int[] perm)
    {
        var result = new float[w.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < n; i++) result[r * n + i] = w[r * n + perm[i]];
        }
        return result;
    }

    private static double[] PermuteSymmetric(double[] h, int n, int[] perm)
    {
        var result = new double[h.Length];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) result[i * n + j] = h[perm[i] * n + perm[j]];
        }
        return result;
    }
}
