using Engine.Formats.Weights;

namespace Engine.Runtime;

internal static class RuntimePrecisionRule
{
    public const int Minimum = SefpFormat.MinBits;
    public const int Maximum = SefpFormat.MaxBits;

    /// <summary>The value unchanged, or an error naming the allowed range.</summary>
    public static int Check(int bits) => bits == 0 || bits is >= Minimum and <= Maximum
        ? bits
        : throw new ArgumentException($"SEFP precision {bits}: the run time reads {Minimum} to {Maximum} mantissa bits (0 = all stored)");
}
