namespace Engine.Runtime;

/// <summary>
/// A product's fusions run as separate ops around it, for weights whose kernel takes none (low-rank, rotated):
/// the norm into a scratch input, the product into a scratch output, then SwiGLU and the residual add.
/// </summary>
internal sealed class UnfusedProduct
{
    private ITensor? _normed, _result, _gate, _up;

    /// <param name="product">input, output: the plain product of the weight.</param>
    public void Run(IBackend backend, int rows, int columns, ITensor x, ITensor y, int tokens, ProductFusion fusion, Action<ITensor, ITensor> product)
    {
        var input = x;
        if (fusion.Norm is { } norm)
        {
            input = ScratchTensor.Ensure(backend, ref _normed, (long)tokens * columns);
            backend.RmsNorm(x, norm, input, tokens, columns, fusion.NormEps);
        }
        if (!fusion.SwiGlu && !fusion.Accumulate)
        {
            product(input, y);
            return;
        }
        var result = ScratchTensor.Ensure(backend, ref _result, (long)tokens * rows);
        product(input, result);
        int outputs = fusion.Outputs(rows);
        if (fusion.SwiGlu)
        {
            int pairs = tokens * outputs;
            var gate = ScratchTensor.Ensure(backend, ref _gate, pairs);
            var up = ScratchTensor.Ensure(backend, ref _up, pairs);
            backend.CopyRows(result, 0, 2, gate, 0, 1, 1, pairs);
            backend.CopyRows(result, 1, 2, up, 0, 1, 1, pairs);
            backend.SwiGlu(gate, up, fusion.Accumulate ? gate : y, pairs);
            result = gate;
        }
        if (fusion.Accumulate) backend.Add(y, result, y, tokens * outputs);
    }
}
