using System.Numerics.Tensors;

namespace Engine.Quantizers.Calibration;

/// <summary>
/// The second moment of a product's input over calibration tokens: H = Σ_t x_t x_tᵀ ([columns, columns], float32,
/// accumulated a batch of rows at a time) and the number of tokens summed. Products that read one input (q/k/v,
/// gate/up) share one instance.
/// </summary>
public sealed class InputStatistics(int columns)
{
    /// <summary>Rows and columns of H per tile of the accumulation.</summary>
    private const int Tile = 64;

    private readonly float[] _sum = new float[checked(columns * columns)];

    public int Columns { get; } = columns;

    public long Tokens { get; private set; }

    /// <summary>Adds the rows of <paramref name="x"/> ([rows][Columns]) to H.</summary>
    public void Add(ReadOnlySpan<float> x, int rows)
    {
        if (x.Length < (long)rows * Columns) throw new ArgumentException($"{rows} rows of {Columns} need {rows * Columns} values, got {x.Length}");
        int n = Columns;
        // H[i, j] += Σ_t x[t, i] x[t, j] as dot products of the columns of x (rows of its transpose), in square tiles of
        // H so both tiles' columns stay in cache; H is symmetric, so only tiles on or above the diagonal are summed
        // (Mean mirrors them). Tiles are independent, so they split across threads.
        var transposed = new float[n * rows];
        for (int t = 0; t < rows; t++)
        {
            for (int i = 0; i < n; i++) transposed[i * rows + t] = x[t * n + i];
        }
        int tiles = (n + Tile - 1) / Tile;
        var pairs = new List<(int I, int J)>();
        for (int ti = 0; ti < tiles; ti++)
        {
            for (int tj = ti; tj < tiles; tj++) pairs.Add((ti, tj));
        }
        Parallel.ForEach(pairs, pair =>
        {
            for (int i = pair.I * Tile; i < Math.Min(n, (pair.I + 1) * Tile); i++)
            {
                var a = transposed.AsSpan(i * rows, rows);
                for (int j = Math.Max(i, pair.J * Tile); j < Math.Min(n, (pair.J + 1) * Tile); j++)
                    _sum[i * n + j] += TensorPrimitives.Dot(a, transposed.AsSpan(j * rows, rows));
            }
        });
        Tokens += rows;
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
}
