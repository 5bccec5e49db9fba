using Engine.Formats;
using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>RoPE with three positions per token (Qwen2-VL's multimodal and 2-D vision RoPE): Vulkan against the CPU, and against plain RoPE.</summary>
public sealed class RopePositionsOpTests(BackendPair backends) : IClassFixture<BackendPair>
{
    [Theory]
    [InlineData(RopeLayout.RotateHalf, 37, 3, 16, 2, 3)]
    [InlineData(RopeLayout.RotateHalf, 5, 4, 64, 0, 16)]    // vision: rows then columns
    [InlineData(RopeLayout.Interleaved, 70, 2, 10, 1, 2)]
    public void Matches_reference(RopeLayout layout, int tokens, int heads, int headDim, int section0, int section1)
    {
        float[] x = WeightFormatChecks.RandomValues(tokens * heads * headDim);
        float[] table = RopeTable.Compute(100, headDim, 10000.0);
        var random = new Random(tokens);
        float[] positions = [.. Enumerable.Range(0, tokens * 3).Select(_ => (float)random.Next(100))];
        var (cpu, gpu) = WeightFormatChecks.Both(backends, be =>
        {
            var t = be.UploadVector(x);
            be.RopePositions(t, be.UploadVector(table), be.UploadVector(positions), tokens, heads, headDim, section0, section1, layout);
            return t;
        }, x.Length);
        WeightFormatChecks.AssertClose(cpu, gpu, 1e-6, $"rope positions {layout}");

        // Pair i rotates by the angle of the position its section picks.
        int half = headDim / 2;
        for (int t = 0; t < tokens; t += 7)
        {
            for (int i = 0; i < half; i++)
            {
                int position = (int)positions[t * 3 + (i < section0 ? 0 : i < section0 + section1 ? 1 : 2)];
                int a = layout == RopeLayout.RotateHalf ? i : 2 * i, b = layout == RopeLayout.RotateHalf ? i + half : 2 * i + 1;
                float cos = table[(position * half + i) * 2], sin = table[(position * half + i) * 2 + 1];
                float xa = x[t * heads * headDim + a], xb = x[t * heads * headDim + b];
                Assert.Equal(xa * cos - xb * sin, cpu[t * heads * headDim + a], 1e-5);
                Assert.Equal(xb * cos + xa * sin, cpu[t * heads * headDim + b], 1e-5);
            }
        }
    }

    [Fact]
    public void Equal_positions_are_plain_rope()
    {
        const int tokens = 9, heads = 3, headDim = 16, pos0 = 20;
        float[] x = WeightFormatChecks.RandomValues(tokens * heads * headDim);
        float[] table = RopeTable.Compute(pos0 + tokens, headDim, 1e6);
        float[] positions = [.. Enumerable.Range(0, tokens * 3).Select(i => (float)(pos0 + i / 3))];
        var (plain, _) = WeightFormatChecks.Both(backends, be =>
        {
            var t = be.UploadVector(x);
            be.Rope(t, be.UploadVector(table), tokens, heads, headDim, pos0, RopeLayout.RotateHalf);
            return t;
        }, x.Length);
        var (cpu, gpu) = WeightFormatChecks.Both(backends, be =>
        {
            var t = be.UploadVector(x);
            be.RopePositions(t, be.UploadVector(table), be.UploadVector(positions), tokens, heads, headDim, 2, 3, RopeLayout.RotateHalf);
            return t;
        }, x.Length);
        Assert.Equal(plain, cpu);
        WeightFormatChecks.AssertClose(plain, gpu, 1e-6, "positions equal to the text position");
    }
}
