namespace Engine.Formats;

/// <summary>Size arithmetic on untrusted header values: non-negative operands, overflow reported rather than thrown.</summary>
internal static class SizeMath
{
    public static bool TryMultiply(long a, long b, out long product)
    {
        if (a < 0 || b < 0 || (b != 0 && a > long.MaxValue / b))
        {
            product = 0;
            return false;
        }
        product = a * b;
        return true;
    }

    public static bool TryAdd(long a, long b, out long sum)
    {
        if (a < 0 || b < 0 || a > long.MaxValue - b)
        {
            sum = 0;
            return false;
        }
        sum = a + b;
        return true;
    }
}
