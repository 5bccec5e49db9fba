namespace Engine.Formats;

/// <summary>Decodes <paramref name="source"/> (whole blocks) into float32 values.</summary>
public delegate void DecodeToFloat(ReadOnlySpan<byte> source, Span<float> destination);

/// <summary>
/// Traits of one weight format: the single place that says how big a block is, how many bits a weight costs,
/// how the CPU reference decodes it and which shader variant decodes it on the GPU.
/// </summary>
/// <param name="Type">The on-disk identifier.</param>
/// <param name="Name">The name used on the command line and in tables.</param>
/// <param name="BlockSize">Weights per block along a row.</param>
/// <param name="BlockBytes">Bytes per block.</param>
/// <param name="Decode">The CPU reference decode (the oracle for the shaders).</param>
/// <param name="ShaderTag">Suffix of the shader variants that decode this format in place.</param>
public sealed record WeightTypeInfo(
    WeightType Type,
    string Name,
    int BlockSize,
    int BlockBytes,
    DecodeToFloat Decode,
    string ShaderTag)
{
    public double BitsPerWeight => BlockBytes * 8.0 / BlockSize;

    /// <summary>Bytes needed for <paramref name="count"/> weights; the count must be whole blocks.</summary>
    public long ByteCount(long count)
    {
        if (count % BlockSize != 0)
            throw new InvalidDataException($"{Name}: {count} weights is not a whole number of {BlockSize}-weight blocks");
        return count / BlockSize * BlockBytes;
    }
}
