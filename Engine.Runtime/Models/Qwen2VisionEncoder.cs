using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// Qwen2-VL's vision tower ("visual."): the Conv3d patch embedding (temporal×p×p kernel and stride, no bias) as one
/// linear map over the processor's flattened patches, pre-norm blocks (LayerNorm norm1/norm2, fused qkv with bias,
/// 2-D rotary embedding of each patch's row and column, bidirectional attention over one image, proj, fc1/act/fc2),
/// and the PatchMerger: ln_q, then each window of merge² neighbouring patches (consecutive rows, as the processor
/// orders them) concatenated through mlp.0, GELU, mlp.2 to the text width.
/// Shapes: C = embed_dim, N = patches of an image, M = merge², F = C·mlp_ratio, D = the merger's output width.
/// </summary>
internal sealed class Qwen2VisionEncoder
{
    private sealed class Block
    {
        public required ITensor Norm1Weight { get; init; }     // [C]
        public required ITensor Norm1Bias { get; init; }       // [C]
        public required IWeightMatrix Qkv { get; init; }       // [3C, C]: q, k, v rows
        public required ITensor QkvBias { get; init; }         // [3C]
        public required IWeightMatrix Output { get; init; }    // proj [C, C]
        public required ITensor OutputBias { get; init; }      // [C]
        public required ITensor Norm2Weight { get; init; }     // [C]
        public required ITensor Norm2Bias { get; init; }       // [C]
        public required IWeightMatrix Up { get; init; }        // fc1 [F, C]
        public required ITensor UpBias { get; init; }          // [F]
        public required IWeightMatrix Down { get; init; }      // fc2 [C, F]
        public required ITensor DownBias { get; init; }        // [C]
    }

    private const float NormEps = 1e-6f;   // Qwen2-VL's vision LayerNorms are built with eps 1e-6

    private readonly IBackend _backend;
    private readonly Block[] _blocks;
    private readonly IWeightMatrix _patchEmbedding;            // [C, channels·temporal·p·p]
    private readonly ITensor _mergerNormWeight, _mergerNormBias;
    private readonly IWeightMatrix _merger1, _merger2;         // mlp.0 [C·M, C·M], mlp.2 [D, C·M]
    private readonly ITensor _merger1Bias, _merger2Bias;
    private readonly ITensor _ropeTable;                       // [MaxSide][d/2] (cos, sin)
    private readonly int _heads, _headDim, _ffn;
    private readonly Activation _activation;

    // Activations, allocated for the largest image seen so far (backend memory lives as long as the backend).
    private int _capacity;
    private ITensor? _patches, _positions, _x, _normed, _qkv, _q, _k, _v, _attention, _up, _merged, _output;

    /// <summary>C: the tower's width.</summary>
    public int Width { get; }

    /// <summary>D: the width of a merged output row (the language model's hidden size).</summary>
    public int OutputWidth { get; }

    /// <summary>Side of a merge window in patches (spatial_merge_size).</summary>
    public int MergeSize { get; }

    public int PatchSize { get; }

    public int TemporalPatchSize { get; }

    public int Channels { get; }

    /// <summary>Values per flattened patch: channels·temporal·p·p.</summary>
    public int PatchLength => Channels * TemporalPatchSize * PatchSize * PatchSize;

    /// <summary>The largest grid side (in patches) the rotary table covers.</summary>
    public int MaxSide { get; }

    public Qwen2VisionEncoder(ConfigSection config, ITensorSource tensors, IBackend backend, string prefix, int maxSide)
    {
        _backend = backend;
        Width = config.Positive("embed_dim");
        OutputWidth = config.Positive("hidden_size");
        _heads = config.Positive("num_heads");
        int depth = config.Positive("depth");
        PatchSize = config.Positive("patch_size", 14);
        TemporalPatchSize = config.Positive("temporal_patch_size", 2);
        MergeSize = config.Positive("spatial_merge_size", 2);
        Channels = config.Find("in_channels") is not null ? config.Positive("in_channels") : config.Positive("in_chans", 3);
        _ffn = (int)(Width * config.Double("mlp_ratio", 4));
        _activation = config.Activation("hidden_act", "quick_gelu");
        if (Width % _heads != 0 || Width / _heads % 4 != 0)
            throw new InvalidDataException($"{config.Where}: embed_dim {Width} over num_heads {_heads} must give a head dim that is a multiple of 4 (2-D rotary halves)");
        _headDim = Width / _heads;
        MaxSide = maxSide;

        var loader = new WeightLoader(tensors, backend, prefix);
        _patchEmbedding = loader.Reshaped("patch_embed.proj.weight", Width, PatchLength);
        _blocks = new Block[depth];
        for (int i = 0; i < depth; i++)
        {
            string p = $"blocks.{i}.";
            _blocks[i] = new Block
            {
                Norm1Weight = loader.Vector(p + "norm1.weight", Width),
                Norm1Bias = loader.Vector(p + "norm1.bias", Width),
                Qkv = loader.Matrix(p + "attn.qkv.weight", 3 * Width, Width),
                QkvBias = loader.Vector(p + "attn.qkv.bias", 3 * Width),
                Output = loader.Matrix(p + "attn.proj.weight", Width, Width),
                OutputBias = loader.Vector(p + "attn.proj.bias", Width),
                Norm2Weight = loader.Vector(p + "norm2.weight", Width),
                Norm2Bias = loader.Vector(p + "norm2.bias", Width),
                Up = loader.Matrix(p + "mlp.fc1.weight", _ffn, Width),
                UpBias = loader.Vector(p + "mlp.fc1.bias", _ffn),
                Down = loader.Matrix(p + "mlp.fc2.weight", Width, _ffn),
                DownBias = loader.Vector(p + "mlp.fc2.bias", Width),
            };
        }
        int window = Width * MergeSize * MergeSize;
        _mergerNormWeight = loader.Vector("merger.ln_q.weight", Width);
        _mergerNormBias = loader.Vector("merger.ln_q.bias", Width);
        _merger1 = loader.Matrix("merger.mlp.0.weight", window, window);
        _merger1Bias = loader.Vector("merger.mlp.0.bias", window);
        _merger2 = loader.Matrix("merger.mlp.2.weight", OutputWidth, window);
        _merger2Bias = loader.Vector("merger.mlp.2.bias", OutputWidth);
        _ropeTable = backend.UploadVector(RotaryTable(maxSide, _headDim));
    }

    /// <summary>The matrices one image reads, for weight accounting.</summary>
    public IEnumerable<IWeightMatrix> Matrices =>
        _blocks.SelectMany(b => new[] { b.Qkv, b.Output, b.Up, b.Down }).Prepend(_patchEmbedding).Append(_merger1).Append(_merger2);

    /// <summary>
    /// The 2-D rotary table [side][d/2]: pair i turns by row·f(i) in the first half and column·f(i - d/4) in the
    /// second (RopePositions picks the row or column per half), f(j) = 10000^(-2j / (d/2)) — the frequencies of a
    /// plain RoPE table of head dim d/2, each row written twice.
    /// </summary>
    internal static float[] RotaryTable(int sides, int headDim)
    {
        int quarter = headDim / 4;
        float[] plain = RopeTable.Compute(sides, headDim / 2, 10000.0);
        var table = new float[sides * quarter * 4];
        for (int p = 0; p < sides; p++)
        {
            plain.AsSpan(p * quarter * 2, quarter * 2).CopyTo(table.AsSpan(p * quarter * 4));
            plain.AsSpan(p * quarter * 2, quarter * 2).CopyTo(table.AsSpan(p * quarter * 4 + quarter * 2));
        }
        return table;
    }

    /// <summary>
    /// (row, column) in the patch grid of the k-th patch as the processor orders them: merge windows row by row, the
    /// window's patches row by row inside it.
    /// </summary>
    internal static (int Row, int Column) PatchPosition(int k, int gridWidth, int mergeSize)
    {
        int window = k / (mergeSize * mergeSize), inside = k % (mergeSize * mergeSize);
        int windowsPerRow = gridWidth / mergeSize;
        return (window / windowsPerRow * mergeSize + inside / mergeSize, window % windowsPerRow * mergeSize + inside % mergeSize);
    }

    /// <summary>
    /// Encodes one image's flattened patches [gridH·gridW][PatchLength] (host floats, the processor's order) into
    /// [gridH·gridW / merge²][D] on the backend, valid until the next call.
    /// </summary>
    public ITensor Encode(ReadOnlySpan<float> patches, int gridT, int gridH, int gridW)
    {
        if (gridT != 1)
            throw new NotSupportedException($"grid_t {gridT}: only images (one temporal patch) are supported, not video");
        if (gridH <= 0 || gridW <= 0 || gridH % MergeSize != 0 || gridW % MergeSize != 0)
            throw new ArgumentException($"image grid {gridH}x{gridW} must be positive multiples of the merge size {MergeSize}");
        if (gridH > MaxSide || gridW > MaxSide)
            throw new ArgumentException($"image grid {gridH}x{gridW} exceeds the largest side {MaxSide} this model's context allows");
        int n = gridH * gridW, c = Width;
        if (patches.Length != (long)n * PatchLength)
            throw new ArgumentException($"{patches.Length} patch values given, a {gridH}x{gridW} grid needs {(long)n * PatchLength}");
        EnsureCapacity(n);
        var be = _backend;
        be.Write(_patches!, 0, patches);
        var positions = new float[n * 3];
        for (int k = 0; k < n; k++)
            (positions[k * 3 + 1], positions[k * 3 + 2]) = PatchPosition(k, gridW, MergeSize);
        be.Write(_positions!, 0, positions);

        be.Linear(_patchEmbedding, null, _patches!, _x!, n);
        float scale = 1f / MathF.Sqrt(_headDim);
        int quarter = _headDim / 4;
        foreach (var block in _blocks)
        {
            be.LayerNorm(_x!, block.Norm1Weight, block.Norm1Bias, _normed!, n, c, NormEps);
            be.Linear(block.Qkv, block.QkvBias, _normed!, _qkv!, n);
            be.CopyRows(_qkv!, 0, 3 * c, _q!, 0, c, c, n);
            be.CopyRows(_qkv!, c, 3 * c, _k!, 0, c, c, n);
            be.CopyRows(_qkv!, 2 * c, 3 * c, _v!, 0, c, c, n);
            be.RopePositions(_q!, _ropeTable, _positions!, n, _heads, _headDim, 0, quarter, RopeLayout.RotateHalf);
            be.RopePositions(_k!, _ropeTable, _positions!, n, _heads, _headDim, 0, quarter, RopeLayout.RotateHalf);
            be.Attention(_q!, _k!, _v!, _attention!, n, 0, _heads, _heads, _headDim, scale, causal: false);
            be.Linear(block.Output, block.OutputBias, _attention!, _normed!, n);
            be.Add(_x!, _normed!, _x!, n * c);

            be.LayerNorm(_x!, block.Norm2Weight, block.Norm2Bias, _normed!, n, c, NormEps);
            be.Linear(block.Up, block.UpBias, _normed!, _up!, n);
            be.Activate(_activation, _up!, _up!, n * _ffn);
            be.Linear(block.Down, block.DownBias, _up!, _normed!, n);
            be.Add(_x!, _normed!, _x!, n * c);
        }

        // [N][C] read as [N/M][C·M]: each merge window's patches are consecutive rows.
        int windows = n / (MergeSize * MergeSize);
        be.LayerNorm(_x!, _mergerNormWeight, _mergerNormBias, _normed!, n, c, NormEps);
        be.Linear(_merger1, _merger1Bias, _normed!, _merged!, windows);
        be.Activate(Activation.Gelu, _merged!, _merged!, n * c);
        be.Linear(_merger2, _merger2Bias, _merged!, _output!, windows);
        return _output!;
    }

    private void EnsureCapacity(int n)
    {
        if (n <= _capacity) return;
        var be = _backend;
        int c = Width;
        _patches = be.Allocate(n * PatchLength);
        _positions = be.Allocate(n * 3);
        _x = be.Allocate(n * c);
        _normed = be.Allocate(n * c);
        _qkv = be.Allocate(n * 3 * c);
        _q = be.Allocate(n * c);
        _k = be.Allocate(n * c);
        _v = be.Allocate(n * c);
        _attention = be.Allocate(n * c);
        _up = be.Allocate(n * _ffn);
        _merged = be.Allocate(n * c);
        _output = be.Allocate(n / (MergeSize * MergeSize) * OutputWidth);
        _capacity = n;
    }
}
