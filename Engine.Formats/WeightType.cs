namespace Engine.Formats;

/// <summary>
/// Storage format of a weight tensor. The numbers are on-disk identifiers (the .epack tensor directory
/// stores them): never renumber, never reuse a retired value.
/// </summary>
public enum WeightType : ushort
{
    F32 = 0,
    F16 = 1,
    BF16 = 2,

    /// <summary>Group integer, 8/4/3/2 bits, f16 scale and zero point per group along a row.</summary>
    Q8 = 3,
    Q4 = 4,
    Q3 = 5,
    Q2 = 6,

    /// <summary>Shared-exponent float (OTARo): sign and mantissa bit-planes, one exponent byte per group.</summary>
    Sefp = 7,

    /// <summary>Sign bits with a scale per group, optionally a second residual sign plane.</summary>
    Binary = 8,

    /// <summary>PCDVQ: 16- or 18-bit direction+magnitude code per 8 weights after a randomized Hadamard transform.</summary>
    Pcdvq = 9,

    /// <summary>W ≈ U·V (+ residual), the factors stored as tensors of their own.</summary>
    LowRank = 10,
}
