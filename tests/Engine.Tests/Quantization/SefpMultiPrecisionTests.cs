using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers;
using Xunit;

namespace Engine.Tests.Quantization;

public sealed class SefpMultiPrecisionTests
{
    private const int Rows = 48, Columns = 256;

    private static readonly FormatParameters Parameters = new(GroupSize: 32, Bits: 7);

    /// <summary>Gaussian weights with a few outliers, as trained matrices have; a fresh seed each run.</summary>
    private static float[] Weights()
    {
        var random = new Random();
        var w = new float[Rows * Columns];
        for (int i = 0; i < w.Length; i++)
            w[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()) * 0.02);
        for (int i = 0; i < 40; i++) w[random.Next(w.Length)] *= 6;
        return w;
    }

    /// <summary>Squared error of the stored matrix read at precision m.</summary>
    private static double Error(EncodedTensor encoded, float[] w, int m)
    {
        var decoded = new float[w.Length];
        SefpFormat.Instance.Decode(encoded.Info, encoded.Data, decoded, null, m);
        double total = 0;
        for (int i = 0; i < w.Length; i++) total += Math.Pow((double)w[i] - decoded[i], 2);
        return total;
    }

    [Fact]
    public void Multi_precision_lowers_the_error_summed_over_precisions_and_keeps_the_full_precision_error()
    {
        var w = Weights();
        var nearest = WeightEncoders.Get(WeightType.Sefp).Encode("w", w, Rows, Columns, Parameters);
        var multi = WeightEncoders.Find(WeightType.Sefp, "sefp")!.Encode("w", w, Rows, Columns, Parameters);
        int[] precisions = [2, 3, 4, 5, 6, 7];
        double nearestSum = precisions.Sum(m => Error(nearest, w, m)), multiSum = precisions.Sum(m => Error(multi, w, m));
        Assert.True(multiSum < 0.95 * nearestSum, $"summed error {multiSum:G4} vs round-to-nearest {nearestSum:G4}");
                string errors = string.Join(" ", precisions.Select(m => $"m{m}: {Error(multi, w, m):G4} vs {Error(nearest, w, m):G4}"));
        Assert.True(Error(multi, w, 2) < Error(nearest, w, 2), errors);
        Assert.True(Error(multi, w, 3) < Error(nearest, w, 3), errors);
        // Full precision pays for it (about round-to-nearest at 5 bits, which tinyprose's perplexity at m = 7 does not
        // notice), but stays finer than round-to-nearest at 4 bits.
        Assert.True(Error(multi, w, 7) < Error(nearest, w, 4), errors);
        Assert.Equal(nearest.Data.Length, multi.Data.Length);
    }

    [Fact]
    public void The_method_is_found_by_name_and_listed_with_the_default()
    {
        Assert.Equal("sefp", WeightEncoders.Find(WeightType.Sefp, "SEFP")!.Method);
        Assert.Null(WeightEncoders.Find(WeightType.Q4, "sefp"));
        Assert.Equal(["rtn", "sefp"], WeightEncoders.MethodsOf(WeightType.Sefp));
        var request = ModelQuantizer.CreateRequest("sefp", null, null, null, null, "sefp", []);
        Assert.Equal("sefp", request.Method);
        Assert.Equal("sefp", request.Encoder.Method);
    }
}
