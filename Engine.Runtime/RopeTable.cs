namespace Engine.Runtime;

/// <summary>
/// cos/sin of every (position, frequency) pair, computed once in float64: GPU sin/cos lose accuracy on large
/// arguments, and a table makes both backends use the very same values.
/// </summary>
public static class RopeTable
{
    /// <summary>Layout [position][headDim / 2] of (cos, sin) pairs; frequency i is theta^(-2i / headDim).</summary>
    public static float[] Compute(int positions, int headDim, double theta, RopeScaling? scaling = null)
    {
        int half = headDim / 2;
        var table = new float[(long)positions * half * 2];
        for (int pos = 0; pos < positions; pos++)
        {
            for (int i = 0; i < half; i++)
            {
                double frequency = Math.Pow(theta, -2.0 * i / headDim);
                double angle = pos * (scaling?.Apply(frequency) ?? frequency);
                table[(pos * half + i) * 2] = (float)Math.Cos(angle);
                table[(pos * half + i) * 2 + 1] = (float)Math.Sin(angle);
            }
        }
        return table;
    }
}
