namespace Engine.Formats;

/// <summary>
/// A stored tensor. Shapes are row-major with the last dimension contiguous, as in safetensors and PyTorch:
/// a linear layer's weight is [out_features, in_features].
/// </summary>
public sealed record TensorInfo(string Name, long[] Shape, WeightType Type, FormatParameters Parameters = default)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Rows of the tensor seen as a matrix: the product of all dimensions but the last.</summary>
    public long Rows => Shape.Length == 0 ? 1 : ElementCount / Shape[^1];

    /// <summary>Length of a row: the last dimension.</summary>
    public long Columns => Shape.Length == 0 ? 1 : Shape[^1];

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";

    public WeightFormat Format => WeightTypes.Get(Type);

    /// <summary>The tensors this one needs besides its own bytes (<see cref="WeightFormat.References"/>).</summary>
    public IReadOnlyList<string> References => Format.References(this);

    /// <summary>How the tensor's bytes are laid out (throws for invalid parameters).</summary>
    public MatrixLayout Layout => Format.Layout(Rows, Columns, Parameters);
}
