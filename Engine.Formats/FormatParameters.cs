namespace Engine.Formats;

/// <summary>
/// Per-tensor parameters of a weight format, recorded in the .epack tensor directory next to the format id.
/// Zero means "not used by this format". Each format validates its own (<see cref="WeightFormat.Validate"/>).
/// </summary>
/// <param name="GroupSize">Weights sharing a scale/exponent along a row (group integer, SEFP, binary).</param>
/// <param name="Bits">Format-specific width: SEFP mantissa bits stored, PCDVQ direction-index bits.</param>
/// <param name="Planes">Binary sign planes (1 or 2).</param>
/// <param name="Rank">Low-rank inner dimension.</param>
/// <param name="Reference">Name of a tensor this one needs: the PCDVQ codebook, a shared low-rank factor.</param>
public readonly record struct FormatParameters(int GroupSize = 0, int Bits = 0, int Planes = 0, int Rank = 0, string? Reference = null)
{
    public override string ToString()
    {
        var parts = new List<string>();
        if (GroupSize != 0) parts.Add($"g{GroupSize}");
        if (Bits != 0) parts.Add($"b{Bits}");
        if (Planes != 0) parts.Add($"p{Planes}");
        if (Rank != 0) parts.Add($"r{Rank}");
        if (Reference is not null) parts.Add($"ref={Reference}");
        return string.Join(" ", parts);
    }
}
