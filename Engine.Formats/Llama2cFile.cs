using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace Engine.Formats;

/// <summary>
/// A legacy llama2.c checkpoint (<c>.bin</c>): seven int32 header fields (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
/// vocab_size, seq_len; a negative vocab_size means a separate classifier at the end), then float32 weights stacked per
/// kind over the layers, the legacy freq_cis tables (skipped) and, when not shared, the classifier. Tensors are exposed
/// under Hugging Face Llama names, each layer's slice of a stacked array as its own tensor; RoPE is interleaved.
/// The header and the file length are checked before anything is read.
/// </summary>
public sealed class Llama2cFile : TensorFile
{
    public const int HeaderBytes = 7 * sizeof(int);


    private Llama2cFile(string path, SafeFileHandle handle, ModelConfig config, long expectedLength, List<StoredTensor> tensors)
        : base(path, handle, tensors)
    {
        Config = config;
        ExpectedLength = expectedLength;
    }

    /// <summary>The hyper-parameters from the header (Architecture "llama", interleaved RoPE, BOS 1, theta 10000).</summary>
    public ModelConfig Config { get; }

    /// <summary>The file length the header implies: header, weights, freq_cis tables and classifier.</summary>
    public long ExpectedLength { get; }

    public static Llama2cFile Open(string path) => Open(path, Read);

    private static Llama2cFile Read(string path, SafeFileHandle handle)
    {
        long fileLength = RandomAccess.GetLength(handle);
        if (fileLength < HeaderBytes)
            throw new InvalidDataException($"{path}: truncated: expected at least the {HeaderBytes}-byte llama2.c header, found {fileLength} bytes");

        Span<byte> header = stackalloc byte[HeaderBytes];
        FileReads.ReadExactly(handle, 0, header, path);
        if (header.StartsWith("PK\u0003\u0004"u8))
            throw new InvalidDataException($"{path}: is a zip archive (a PyTorch checkpoint?), not a llama2.c .bin; convert it to safetensors");
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) == 0x616b3432)
            throw new InvalidDataException(
                $"{path}: is a llama2.c version {BinaryPrimitives.ReadInt32LittleEndian(header[4..])} export (magic 'ak42'); only the legacy header-less format is supported");

        int dim = BinaryPrimitives.ReadInt32LittleEndian(header);
        int hiddenDim = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        int layers = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        int heads = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
        int kvHeads = BinaryPrimitives.ReadInt32LittleEndian(header[16..]);
        int vocabField = BinaryPrimitives.ReadInt32LittleEndian(header[20..]);
        int seqLen = BinaryPrimitives.ReadInt32LittleEndian(header[24..]);
        string fields = $"dim={dim}, hidden_dim={hiddenDim}, n_layers={layers}, n_heads={heads}, n_kv_heads={kvHeads}, vocab_size={vocabField}, seq_len={seqLen}";

        if (dim <= 0 || hiddenDim <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || seqLen <= 0 || vocabField == 0 || vocabField == int.MinValue)
            throw new InvalidDataException($"{path}: bad llama2.c header ({fields}): every size must be positive (vocab_size non-zero)");
        if (dim % heads != 0)
            throw new InvalidDataException($"{path}: bad llama2.c header ({fields}): n_heads does not divide dim");
        if (heads % kvHeads != 0)
            throw new InvalidDataException($"{path}: bad llama2.c header ({fields}): n_kv_heads does not divide n_heads");
        int headSize = dim / heads;
        if (headSize % 2 != 0)
            throw new InvalidDataException($"{path}: bad llama2.c header ({fields}): head size {headSize} is odd, RoPE needs pairs");

        bool shared = vocabField > 0;
        int vocab = Math.Abs(vocabField);
        int kvDim = dim / heads * kvHeads;

        long offset = HeaderBytes;
        bool overflow = false;

        // Reserves a stacked array of `count` float32 values and returns its start; flags overflow instead of throwing.
        long Take(long count)
        {
            long start = offset;
            if (!SizeMath.TryMultiply(count, sizeof(float), out long bytes) || !SizeMath.TryAdd(offset, bytes, out offset))
            {
                overflow = true;
                offset = long.MaxValue;
            }
            return start;
        }

        long Product(params long[] factors)
        {
            long product = 1;
            foreach (long factor in factors)
            {
                if (!SizeMath.TryMultiply(product, factor, out product))
                {
                    overflow = true;
                    return long.MaxValue / 8;
                }
            }
            return product;
        }

        long embedding = Take(Product(vocab, dim));
        long rmsAtt = Take(Product(layers, dim));
        long wq = Take(Product(layers, dim, dim));
        long wk = Take(Product(layers, kvDim, dim));
        long wv = Take(Product(layers, kvDim, dim));
        long wo = Take(Product(layers, dim, dim));
        long rmsFfn = Take(Product(layers, dim));
        long w1 = Take(Product(layers, hiddenDim, dim));
        long w2 = Take(Product(layers, dim, hiddenDim));
        long w3 = Take(Product(layers, hiddenDim, dim));
        long rmsFinal = Take(dim);
        Take(Product(seqLen, headSize / 2)); // freq_cis_real, unused
        Take(Product(seqLen, headSize / 2)); // freq_cis_imag, unused
        long classifier = shared ? -1 : Take(Product(vocab, dim));
        if (overflow)
            throw new InvalidDataException($"{path}: bad llama2.c header ({fields}): the sizes it implies overflow");
        long expectedLength = offset;

        if (fileLength < expectedLength)
            throw new InvalidDataException($"{path}: truncated: expected {expectedLength} bytes, found {fileLength} (llama2.c header {fields})");
        if (fileLength > expectedLength)
            throw new InvalidDataException(
                $"{path}: size mismatch: the llama2.c header ({fields}) implies {expectedLength} bytes, found {fileLength}; not a legacy llama2.c checkpoint?");

        var layerTensors = new List<(int Layer, StoredTensor Tensor)>();

        // One HF-named tensor per layer, each a slice of the stacked array that starts at `start`.
        void PerLayer(string suffix, long start, params long[] shape)
        {
            long perLayerBytes = Product(shape) * sizeof(float);
            for (int i = 0; i < layers; i++)
                layerTensors.Add((i, Stored($"model.layers.{i}.{suffix}", (long[])shape.Clone(), start + i * perLayerBytes)));
        }

        PerLayer("input_layernorm.weight", rmsAtt, dim);
        PerLayer("self_attn.q_proj.weight", wq, dim, dim);
        PerLayer("self_attn.k_proj.weight", wk, kvDim, dim);
        PerLayer("self_attn.v_proj.weight", wv, kvDim, dim);
        PerLayer("self_attn.o_proj.weight", wo, dim, dim);
        PerLayer("post_attention_layernorm.weight", rmsFfn, dim);
        PerLayer("mlp.gate_proj.weight", w1, hiddenDim, dim);
        PerLayer("mlp.down_proj.weight", w2, dim, hiddenDim);
        PerLayer("mlp.up_proj.weight", w3, hiddenDim, dim);

        // Layer-major order (OrderBy is stable): embedding, each layer's tensors, the final norm, the classifier.
        var tensors = new List<StoredTensor> { Stored("model.embed_tokens.weight", [vocab, dim], embedding) };
        tensors.AddRange(layerTensors.OrderBy(entry => entry.Layer).Select(entry => entry.Tensor));
        tensors.Add(Stored("model.norm.weight", [dim], rmsFinal));
        if (!shared)
            tensors.Add(Stored("lm_head.weight", [vocab, dim], classifier));

        var config = new ModelConfig
        {
            Architecture = "llama",
            VocabSize = vocab,
            HiddenSize = dim,
            IntermediateSize = hiddenDim,
            LayerCount = layers,
            HeadCount = heads,
            KvHeadCount = kvHeads,
            HeadDim = headSize,
            MaxPositions = seqLen,
            RmsNormEps = 1e-5,
            RopeTheta = 10000.0,
            RopeLayout = RopeLayout.Interleaved,
            TieWordEmbeddings = shared,
            BosTokenId = 1,
            EosTokenIds = [],
            Raw = null,
        };
        return new Llama2cFile(path, handle, config, expectedLength, tensors);
    }

    private static StoredTensor Stored(string name, long[] shape, long start)
    {
        var info = new TensorInfo(name, shape, WeightType.F32);
        return new StoredTensor(info, start, info.ElementCount * sizeof(float));
    }
}
