using System.Numerics.Tensors;
using Engine.Formats;
using Engine.Formats.Weights;

namespace Engine.Quantizers.Pcdvq;

/// <summary>
/// The model-independent PCDVQ codebooks. Directions: 2^bits unit vectors in R^8 chosen from normalized E8 lattice
/// points by greedy farthest-point selection (start at the first candidate, then repeatedly add the candidate whose
/// largest cosine to the chosen set is smallest). Magnitudes: the 4-level Lloyd-Max quantizer of the chi
/// distribution with 8 degrees of freedom (the norm of a standard Gaussian 8-vector), which is what an 8-vector of
/// a rotated, RMS-normalized row looks like. Deterministic: every run builds the same codebook.
/// </summary>
public static class PcdvqCodebook
{
    private const int Dim = PcdvqFormat.VectorLength;

    /// <summary>The codebook as the f16 [2^bits + 1, 8] tensor the format references.</summary>
    public static StoredBytes Build(int bits)
    {
        var directions = Directions(bits);
        var magnitudes = Magnitudes();
        int count = 1 << bits;
        var values = new float[(count + 1) * Dim];
        directions.CopyTo(values, 0);
        magnitudes.CopyTo(values, count * Dim);
        var info = new TensorInfo(PcdvqFormat.CodebookName(bits), [count + 1, Dim], WeightType.F16);
        var data = new byte[info.Layout.TotalBytes];
        FloatFormat.F16.EncodeValues(values, data);
        return new StoredBytes(info, data);
    }

    /// <summary>2^bits unit directions, row-major [2^bits][8].</summary>
    public static float[] Directions(int bits)
    {
        int count = 1 << bits;
        // E8 shells of squared norm 2, 4, 6, 8 give 26,400 distinct directions; up to 12 about 117,000.
        float[] candidates = E8Directions(bits <= 14 ? 8 : 12);
        int n = candidates.Length / Dim;
        if (n < count) throw new InvalidOperationException($"only {n} E8 directions for a {count}-entry codebook");
        // Per candidate, its largest cosine to the chosen set; chosen ones are marked +inf so they are never picked again.
        var closest = new float[n];
        Array.Fill(closest, float.NegativeInfinity);
        var chosen = new float[count * Dim];
        var cosines = new float[n];
        var coordinates = Transpose(candidates, n);
        int next = 0;
        for (int k = 0; k < count; k++)
        {
            candidates.AsSpan(next * Dim, Dim).CopyTo(chosen.AsSpan(k * Dim));
            closest[next] = float.PositiveInfinity;
            // cosines = Σ_i coordinates[i] · chosen_k[i], over all candidates at once.
            TensorPrimitives.Multiply(coordinates[0], chosen[k * Dim], cosines);
            for (int i = 1; i < Dim; i++) TensorPrimitives.MultiplyAdd(coordinates[i], chosen[k * Dim + i], cosines, cosines);
            TensorPrimitives.Max(closest, cosines, closest);
            next = TensorPrimitives.IndexOfMin(closest);
        }
        return chosen;
    }

    /// <summary>The 4 Lloyd-Max levels of the chi distribution with 8 degrees of freedom, ascending.</summary>
    public static float[] Magnitudes()
    {
        // Density of |z| for z ~ N(0, I_8): r^7 e^{-r^2/2} / 48, on a fine grid.
        const int points = 200_000;
        const double top = 9.0;
        var r = new double[points];
        var density = new double[points];
        for (int i = 0; i < points; i++)
        {
            r[i] = (i + 0.5) * top / points;
            density[i] = Math.Pow(r[i], 7) * Math.Exp(-r[i] * r[i] / 2) / 48;
        }
        double[] levels = [1.5, 2.4, 3.1, 4.0];
        for (int iteration = 0; iteration < 200; iteration++)
        {
            var sum = new double[MagnitudeCount];
            var weight = new double[MagnitudeCount];
            int level = 0;
            for (int i = 0; i < points; i++)
            {
                while (level < MagnitudeCount - 1 && r[i] > (levels[level] + levels[level + 1]) / 2) level++;
                sum[level] += r[i] * density[i];
                weight[level] += density[i];
            }
            for (int l = 0; l < MagnitudeCount; l++) levels[l] = sum[l] / weight[l];
        }
        return [.. levels.Select(l => (float)l)];
    }

    private const int MagnitudeCount = PcdvqFormat.MagnitudeCount;

    /// <summary>
    /// Unit vectors of the E8 points with squared norm 2..maxNorm2 (E8 = D8 ∪ D8 + ½: integer vectors with an even
    /// sum, and half-integer vectors with an even sum), each direction once, in a fixed order (by shell, then
    /// lexicographic).
    /// </summary>
    private static float[] E8Directions(int maxNorm2)
    {
        var seen = new HashSet<string>();
        var result = new List<float>();
        for (int shell = 2; shell <= maxNorm2; shell += 2)
        {
            var points = new List<int[]>();  // coordinates doubled, so half-integers are odd integers
            Enumerate(new int[Dim], 0, 4 * shell, points);
            points.Sort((a, b) => Compare(a, b));
            foreach (var p in points)
            {
                double norm = Math.Sqrt(p.Sum(v => (double)v * v));
                var unit = p.Select(v => (float)(v / norm)).ToArray();
                if (!seen.Add(string.Join(",", unit.Select(u => Math.Round(u, 5))))) continue;
                result.AddRange(unit);
            }
        }
        return [.. result];
    }

    /// <summary>Doubled coordinates of E8 points with doubled squared norm exactly <paramref name="target"/>.</summary>
    private static void Enumerate(int[] point, int index, int target, List<int[]> output)
    {
        int used = 0;
        for (int i = 0; i < index; i++) used += point[i] * point[i];
        if (index == Dim)
        {
            if (used != target) return;
            bool allEven = point.All(v => v % 2 == 0), allOdd = point.All(v => v % 2 != 0);
            if (!allEven && !allOdd) return;
            if (point.Sum() % 4 != 0) return;  // the coordinate sum (halved) must be even
            output.Add((int[])point.Clone());
            return;
        }
        int limit = (int)Math.Sqrt(target - used);
        for (int v = -limit; v <= limit; v++)
        {
            // All coordinates share a parity: fix it by the first one.
            if (index > 0 && (v - point[0]) % 2 != 0) continue;
            point[index] = v;
            Enumerate(point, index + 1, target, output);
        }
        point[index] = 0;
    }

    private static int Compare(int[] a, int[] b)
    {
        for (int i = 0; i < Dim; i++)
        {
            if (a[i] != b[i]) return a[i].CompareTo(b[i]);
        }
        return 0;
    }

    private static float[][] Transpose(float[] rows, int n)
    {
        var columns = new float[Dim][];
        for (int i = 0; i < Dim; i++)
        {
            columns[i] = new float[n];
            for (int j = 0; j < n; j++) columns[i][j] = rows[j * Dim + i];
        }
        return columns;
    }
}
