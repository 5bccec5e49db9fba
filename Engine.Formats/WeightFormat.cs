namespace Engine.Formats;

/// <summary>
/// Traits of one weight format: the single place that says how a block is stored, how many bits a weight costs,
/// how the CPU reference decodes it and which shader variant decodes it on the GPU. One subclass per format in
/// <c>Weights/</c>; <see cref="WeightTypes"/> is the table of them.
/// </summary>
public abstract class WeightFormat
{
    public abstract WeightType Type { get; }

    /// <summary>The name used on the command line and in tables.</summary>
    public abstract string Name { get; }

    /// <summary>Parameters used when the command line gives none.</summary>
    public virtual FormatParameters DefaultParameters => default;

    /// <summary>Throws <see cref="InvalidDataException"/> naming the problem when the parameters do not suit this format.</summary>
    public virtual void Validate(FormatParameters parameters)
    {
        if (parameters != default)
            throw new InvalidDataException($"{Name} takes no format parameters, got {parameters}");
    }

    /// <summary>Weights per block along a row.</summary>
    public abstract int BlockSize(FormatParameters parameters);

    /// <summary>Bytes per block, every stream counted (scales, zero points, exponents, planes, codes).</summary>
    public abstract int BlockBytes(FormatParameters parameters);

    /// <summary>The format's formula: bits per weight of the blocks (per-tensor tails and shared codebooks not included).</summary>
    public double BitsPerWeight(FormatParameters parameters) => BlockBytes(parameters) * 8.0 / BlockSize(parameters);

    /// <summary>How a [rows, columns] matrix is stored; validates the parameters first.</summary>
    public abstract MatrixLayout Layout(long rows, long columns, FormatParameters parameters);

    /// <summary>
    /// The CPU reference decode of a whole tensor into row-major [rows, columns] floats (padding dropped). It is the
    /// oracle the shaders are tested against. <paramref name="shared"/> supplies referenced tensors (codebooks).
    /// </summary>
    public abstract void Decode(TensorInfo info, ReadOnlySpan<byte> data, Span<float> destination, ITensorSource? shared);

    /// <summary>
    /// The tensors a tensor of this format needs besides its own bytes, by name (a codebook, low-rank factors): its
    /// companions, written and counted with it and never quantized on their own. By default the one
    /// <see cref="FormatParameters.Reference"/>.
    /// </summary>
    public virtual IReadOnlyList<string> References(TensorInfo info) =>
        info.Parameters.Reference is { } name ? [name] : [];

    /// <summary>
    /// Checks a tensor against the tensors it references (their shapes, say) when a file is opened, so that a hostile
    /// file fails before anything is allocated for it. <paramref name="find"/> looks a tensor of the file up by name
    /// (null when absent); <paramref name="where"/> starts the message of the <see cref="InvalidDataException"/>.
    /// </summary>
    public virtual void CheckReferences(TensorInfo info, Func<string, TensorInfo?> find, string where)
    {
    }

    /// <summary>Suffix of the shader variants that decode this format in place: matvec_TAG, matmul_TAG, embedding_TAG.</summary>
    public abstract string ShaderTag(FormatParameters parameters);

    /// <summary>
    /// Up to four format-specific shader constants (group size, bits read, ...), passed as push constants.
    /// <paramref name="precision"/> is the run-time precision (<see cref="EffectivePrecision"/>).
    /// </summary>
    public virtual void ShaderParameters(FormatParameters parameters, int precision, Span<uint> destination)
    {
    }

    /// <summary>
    /// The precision a tensor is read at when the run time asks for <paramref name="requested"/> bits (0 = all that is
    /// stored). Formats whose lower precisions read fewer bytes (SEFP) return the bits they will read; others 0.
    /// </summary>
    public virtual int EffectivePrecision(FormatParameters parameters, int requested) => 0;

    /// <summary>Bytes one full pass over the matrix reads at <paramref name="precision"/> (what a mat-vec streams).</summary>
    public virtual long BytesRead(MatrixLayout layout, FormatParameters parameters, int precision) => layout.TotalBytes;

    /// <summary>The CPU reference decode at a run-time precision (<see cref="EffectivePrecision"/>); the same as <see cref="Decode"/> for most formats.</summary>
    public virtual void Decode(TensorInfo info, ReadOnlySpan<byte> data, Span<float> destination, ITensorSource? shared, int precision) =>
        Decode(info, data, destination, shared);

    public override string ToString() => Name;

    /// <summary>Rounds <paramref name="value"/> up to a multiple of <paramref name="multiple"/>.</summary>
    protected static long RoundUp(long value, long multiple) => (value + multiple - 1) / multiple * multiple;
}
