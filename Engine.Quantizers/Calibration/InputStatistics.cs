using System.Numerics.Tensors;

namespace Engine.Quantizers.Calibration;

/// <summary>
/// The second moment of a product's input over calibration tokens: H = Σ_t x_t x_tᵀ ([columns, columns], float32,
/// accumulated a batch of rows at a time) and the number of tokens summed. Products that read one input (q/k/v,
/// gate/up) share one instance. For methods that align the quantized model with the full-precision one
/// (<see cref="Methods.ICalibratedEncoder.NeedsCrossStatistics"/>), also the cross moment C = Σ_t x⁰_t x_tᵀ of the
/// full-precision model's input x⁰_t at the same product and token with this (quantized model's) input x_t.
/// </summary>
public sealed class InputStatistics(int columns)
{
    /// <summary>Rows and columns of H per tile of the accumulation.</summary>
    private const int Tile = 64;

    private readonly float[] _sum = new float[checked(columns * columns)];

    /// <summary>C's sum, allocated with the first pair of inputs (most methods never need it).</summary>
    private float[]? _crossSum;

    public int Columns { get; } = columns;

    public long Tokens { get; private set; }

    /// <summary>The tokens summed into C.</summary>
    public long CrossTokens { get; private set; }

    /// <summary>Adds the rows of <paramref name="x"/> ([rows][Columns]) to H.</summary>
    public void Add(ReadOnlySpan<float> x, int rows)
    {
        CheckRows(x, rows);
        // H is symmetric, so only tiles on or above the diagonal are summed (Mean mirrors them).
        var transposed = Transpose(x, rows);
        AddProducts(_sum, transposed, transposed, rows, upperOnly: true);
        Tokens += rows;
    }

    /// <summary>
    /// Adds the rows of <paramref name="fullPrecision"/> (x⁰) and <paramref name="quantized"/> (x), token by token the
    /// same positions, to C = Σ_t x⁰_t x_tᵀ. The quantized rows go to H through <see cref="Add"/> as well.
    /// </summary>
    public void AddCross(ReadOnlySpan<float> fullPrecision, ReadOnlySpan<float> quantized, int rows)
    {
        CheckRows(fullPrecision, rows);
        CheckRows(quantized, rows);
        _crossSum ??= new float[_sum.Length];
        AddProducts(_crossSum, Transpose(fullPrecision, rows), Transpose(quantized, rows), rows, upperOnly: false);
        CrossTokens += rows;
    }

    private void CheckRows(ReadOnlySpan<float> x, int rows)
    {
        if (x.Length < (long)rows * Columns) throw new ArgumentException($"{rows} rows of {Columns} need {rows * Columns} values, got {x.Length}");
    }

    /// <summary>[rows][Columns] as [Columns][rows]: the columns of x as contiguous vectors.</summary>
    private float[] Transpose(ReadOnlySpan<float> x, int rows)
    {
        int n = Columns;
        var transposed = new float[n * rows];
        for (int t = 0; t < rows; t++)
        {
            for (int i = 0; i < n; i++) transposed[i * rows + t] = x[t * n + i];
        }
        return transposed;
    }

    /// <summary>
    /// sum[i, j] += Σ_t a[t, i] b[t, j] as dot products of the columns of a and b (rows of the transposes), in square
    /// tiles of the sum so both tiles' columns stay in cache; tiles are independent, so they split across threads.
    /// </summary>
    private void AddProducts(float[] sum, float[] aTransposed, float[] bTransposed, int rows, bool upperOnly)
    {
        int n = Columns;
        int tiles = (n + Tile - 1) / Tile;
        var pairs = new List<(int I, int J)>();
        for (int ti = 0; ti < tiles; ti++)
        {
            for (int tj = upperOnly ? ti : 0; tj < tiles; tj++) pairs.Add((ti, tj));
        }
        Parallel.ForEach(pairs, pair =>
        {
            for (int i = pair.I * Tile; i < Math.Min(n, (pair.I + 1) * Tile); i++)
            {
                var a = aTransposed.AsSpan(i * rows, rows);
                for (int j = upperOnly ? Math.Max(i, pair.J * Tile) : pair.J * Tile; j < Math.Min(n, (pair.J + 1) * Tile); j++)
                    sum[i * n + j] += TensorPrimitives.Dot(a, bTransposed.AsSpan(j * rows, rows));
            }
        });
    }

    /// <summary>H divided by the token count (the mean of x xᵀ), in double precision; all zeros before any token.</summary>
    public double[] Mean()
    {
        var mean = new double[_sum.Length];
        if (Tokens == 0) return mean;
        double scale = 1.0 / Tokens;
        int n = Columns;
        for (int i = 0; i < n; i++)
        {
            for (int j = i; j < n; j++) mean[i * n + j] = mean[j * n + i] = _sum[i * n + j] * scale;
        }
        return mean;
    }

    /// <summary>
    /// C divided by the token count, row-major [Columns, Columns] with C[i, j] = mean of x⁰_i x_j, in double
    /// precision; null unless every token of H came with its full-precision input.
    /// </summary>
    public double[]? CrossMean()
    {
        if (_crossSum is null || Tokens == 0 || CrossTokens != Tokens) return null;
        double scale = 1.0 / Tokens;
        return [.. _crossSum.Select(v => v * scale)];
    }
}
