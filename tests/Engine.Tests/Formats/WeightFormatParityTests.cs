using Engine.Formats;
using Engine.Formats.Weights;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Runtime.Models;
using Engine.Shaders;
using Engine.Tests.Runtime;
using Xunit;

namespace Engine.Tests.Formats;

/// <summary>
/// One parity matrix for every weight format of <see cref="WeightTypes.All"/>: each format at the parameters worth
/// covering, times every op that reads weights (mat-vec, a small batch, mat-mat, embedding, expert-indexed), Vulkan
/// against the CPU reference on fresh random inputs and odd shapes. An op a format cannot do is asserted to give its
/// clear error. Beside it, the consistency of the format table with the shader variants, the encoders and the
/// bits-per-weight formula.
/// </summary>
public sealed class WeightFormatParityTests(BackendPair backends) : IClassFixture<BackendPair>, IDisposable
{
    /// <summary>One format at one set of parameters (and run-time precision), with how to encode a matrix in it.</summary>
    public sealed record Variant(WeightType Type, FormatParameters Parameters, int Precision = 0, IWeightEncoder? Encoder = null)
    {
        public WeightFormat Format => WeightTypes.Get(Type);

        public EncodedTensor Encode(string name, float[] values, int rows, int columns) =>
            (Encoder ?? WeightEncoders.Get(Type)).Encode(name, values, rows, columns, Parameters);
    }

    public enum Op
    {
        /// <summary>One token: the mat-vec shaders.</summary>
        MatVec,

        /// <summary>Three tokens: the smallest batch.</summary>
        SmallBatch,

        /// <summary>70 tokens: the tiled mat-mat shaders, a partial tile of tokens.</summary>
        MatMul,

        Embedding,

        /// <summary>ExpertLinear over an uploaded stack: one token (matvec_experts) and a per-slot batch (matmul_experts).</summary>
        ExpertIndexed,
    }

    /// <summary>
    /// The parameter variants worth covering, per format (what the per-format test files covered before); a format
    /// of the table not named here is covered at its default parameters, so a new format joins the matrix by itself.
    /// </summary>
    private static readonly Dictionary<WeightType, (string Name, Variant Variant)[]> Overrides = new()
    {
        [WeightType.Q8] = GroupSizes(WeightType.Q8),
        [WeightType.Q4] = GroupSizes(WeightType.Q4),
        [WeightType.Q3] = GroupSizes(WeightType.Q3),
        [WeightType.Q2] = GroupSizes(WeightType.Q2),
        // Stored bits 2..7 at groups 16 and 32, read at every run-time precision 2..7 somewhere (7 above the stored 3).
        [WeightType.Sefp] =
        [
            ("g32 b7", new(WeightType.Sefp, new(GroupSize: 32, Bits: 7))),
            ("g32 b7 at 4", new(WeightType.Sefp, new(GroupSize: 32, Bits: 7), Precision: 4)),
            ("g16 b7 at 2", new(WeightType.Sefp, new(GroupSize: 16, Bits: 7), Precision: 2)),
            ("g32 b6 at 5", new(WeightType.Sefp, new(GroupSize: 32, Bits: 6), Precision: 5)),
            ("g16 b5 at 3", new(WeightType.Sefp, new(GroupSize: 16, Bits: 5), Precision: 3)),
            ("g16 b4", new(WeightType.Sefp, new(GroupSize: 16, Bits: 4))),
            ("g32 b3 at 7", new(WeightType.Sefp, new(GroupSize: 32, Bits: 3), Precision: 7)),
            ("g32 b2", new(WeightType.Sefp, new(GroupSize: 32, Bits: 2))),
        ],
        [WeightType.Binary] =
        [
            .. from planes in new[] { 1, 2 }
               from groupSize in new[] { 32, 128, 256 }
               select ($"{planes} plane{(planes == 1 ? "" : "s")} g{groupSize}", new Variant(WeightType.Binary, new(GroupSize: groupSize, Planes: planes))),
        ],
        [WeightType.Pcdvq] =
        [
            ("14 bits", new(WeightType.Pcdvq, new(Bits: 14, Reference: PcdvqFormat.CodebookName(14)))),
            ("16 bits", new(WeightType.Pcdvq, new(Bits: 16, Reference: PcdvqFormat.CodebookName(16)))),
        ],
        // f16 factors without and with a q4 residual; factors in other formats (each run by its own shaders).
        [WeightType.LowRank] =
        [
            ("r13", new(WeightType.LowRank, new(Rank: 13))),
            ("r13 + q4 residual", new(WeightType.LowRank, new(Rank: 13), Encoder: new LowRankEncoder { ResidualFormat = WeightType.Q4 })),
            ("r40 bf16 factors", new(WeightType.LowRank, new(Rank: 40), Encoder: new LowRankEncoder { FactorFormat = WeightType.BF16 })),
            ("r40 q8 factors", new(WeightType.LowRank, new(Rank: 40), Encoder: new LowRankEncoder { FactorFormat = WeightType.Q8 })),
            ("r40 binary factors", new(WeightType.LowRank, new(Rank: 40), Encoder: new LowRankEncoder { FactorFormat = WeightType.Binary })),
        ],
    };

    private static (string, Variant)[] GroupSizes(WeightType type) =>
        [.. new[] { 32, 64, 128 }.Select(g => ($"g{g}", new Variant(type, new(GroupSize: g))))];

    /// <summary>Every variant of every format of the table, by a readable name ("q4 g64", "sefp g16 b5 at 3").</summary>
    public static IReadOnlyDictionary<string, Variant> Variants { get; } = WeightTypes.All
        .SelectMany(format => Overrides.TryGetValue(format.Type, out var variants)
            ? variants.Select(v => ($"{format.Name} {v.Name}", v.Variant))
            : [(format.Name, new Variant(format.Type, format.DefaultParameters))])
        .ToDictionary(v => v.Item1, v => v.Item2);

    public static TheoryData<string> VariantNames() => new(Variants.Keys);

    public static TheoryData<string, Op> Matrix()
    {
        var data = new TheoryData<string, Op>();
        foreach (string variant in Variants.Keys)
            foreach (var op in Enum.GetValues<Op>())
                data.Add(variant, op);
        return data;
    }

    public void Dispose()
    {
        backends.Cpu.RuntimePrecision = 0;
        backends.Vulkan.RuntimePrecision = 0;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Vulkan_matches_the_cpu_reference(string name, Op op)
    {
        var variant = Variants[name];
        backends.Cpu.RuntimePrecision = variant.Precision;
        backends.Vulkan.RuntimePrecision = variant.Precision;
        switch (op)
        {
            // Odd row counts, columns off every group size, a token count off the mat-mat tile.
            case Op.MatVec:
                WeightFormatChecks.LinearMatchesReference(backends, Encode(variant, "parity.matvec", 67, 515), 1);
                break;
            case Op.SmallBatch:
                WeightFormatChecks.LinearMatchesReference(backends, Encode(variant, "parity.batch", 128, 344), 3);
                break;
            case Op.MatMul:
                WeightFormatChecks.LinearMatchesReference(backends, Encode(variant, "parity.matmul", 129, 200), 70);
                break;
            case Op.Embedding:
                Embedding(variant);
                break;
            case Op.ExpertIndexed:
                WeightFormatChecks.ExpertLinearMatchesReference(backends, ExpertStack(variant), experts: 5, rows: 67, columns: 130, k: 2);
                break;
        }
    }

    private static EncodedTensor Encode(Variant variant, string name, int rows, int columns) =>
        variant.Encode(name, WeightFormatChecks.RandomValues(rows * columns), rows, columns);

    /// <summary>An embedding lookup, or the clear error of a format whose tables cannot be looked up in.</summary>
    private void Embedding(Variant variant)
    {
        const int vocab = 131, dim = 203;
        var encoded = Encode(variant, "parity.embed_tokens.weight", vocab, dim);
        switch (variant.Type)
        {
            case WeightType.LowRank:
                // A row of U·V is stored nowhere: both backends refuse, naming the table.
                using (var shared = new InMemoryTensors(encoded.Companions))
                {
                    foreach (IBackend backend in new IBackend[] { backends.Cpu, backends.Vulkan })
                    {
                        var table = backend.UploadMatrix(encoded.Info, encoded.Data, shared);
                        var error = Assert.Throws<NotSupportedException>(() => backend.Embedding(table, [1, 2], backend.Allocate(2 * dim)));
                        Assert.Contains("'parity.embed_tokens.weight'", error.Message);
                        Assert.Contains("cannot be low-rank", error.Message);
                    }
                }
                break;
            case WeightType.Pcdvq:
                // The rotation mixes rows: Vulkan refuses, naming the table; the CPU reference looks rows up in its decode.
                using (var shared = new InMemoryTensors(encoded.Companions))
                {
                    var table = backends.Vulkan.UploadMatrix(encoded.Info, encoded.Data, shared);
                    var error = Assert.Throws<NotSupportedException>(() => backends.Vulkan.Embedding(table, [1], backends.Vulkan.Allocate(dim)));
                    Assert.Contains("'parity.embed_tokens.weight'", error.Message);
                    Assert.Contains("cannot be an embedding lookup", error.Message);

                    var cpu = backends.Cpu;
                    var rows = cpu.Allocate(2 * dim);
                    cpu.Embedding(cpu.UploadMatrix(encoded.Info, encoded.Data, shared), [vocab - 1, 1], rows);
                    var looked = new float[2 * dim];
                    cpu.Read(rows, looked);
                    float[] decoded = WeightFormatChecks.Decode(encoded);
                    Assert.Equal(decoded.AsSpan((vocab - 1) * dim, dim).ToArray(), looked.AsSpan(0, dim).ToArray());
                    Assert.Equal(decoded.AsSpan(dim, dim).ToArray(), looked.AsSpan(dim, dim).ToArray());
                }
                break;
            default:
                WeightFormatChecks.EmbeddingMatchesReference(backends, encoded);
                break;
        }
    }

    /// <summary>
    /// The expert stack each backend builds for <paramref name="variant"/>: <see cref="IBackend.UploadExperts"/> of the
    /// experts' tensors, or for low-rank experts (whose factors are stacked kind by kind) the model loader's stack.
    /// </summary>
    private static Func<IBackend, IWeightMatrix> ExpertStack(Variant variant)
    {
        const int experts = 5, rows = 67, columns = 130;
        var encoded = Enumerable.Range(0, experts).Select(e => Encode(variant, $"parity.experts.{e}.weight", rows, columns)).ToArray();
        var stored = encoded.SelectMany(x => x.Companions.Append(x.Tensor)).DistinctBy(t => t.Info.Name).ToArray();
        if (variant.Type == WeightType.LowRank)
            return be => new WeightLoader(new InMemoryTensors(stored), be).Experts([.. encoded.Select(x => x.Info.Name)], rows, columns);
        return be => be.UploadExperts([.. encoded.Select(x => x.Info)], [.. encoded.Select(x => x.Data)], new InMemoryTensors(stored));
    }

    [Fact]
    public void Every_format_of_the_table_is_in_the_matrix_and_every_override_is_a_format_of_the_table()
    {
        var covered = Variants.Values.Select(v => v.Type).ToHashSet();
        Assert.All(WeightTypes.All, format => Assert.Contains(format.Type, covered));
        Assert.All(Overrides.Keys, type => Assert.True(WeightTypes.TryGet(type, out _), $"parameter variants for {type}, which is not in the table"));
        Assert.All(Variants, v => v.Value.Format.Validate(v.Value.Parameters));
        Assert.Equal(Variants.Count * Enum.GetValues<Op>().Length, Matrix().Count());
    }

    [Fact]
    public void Every_format_with_a_shader_tag_has_all_its_shader_variants_embedded()
    {
        var embedded = ShaderLibrary.Variants.ToHashSet();
        string[] kinds = ["matvec_", "matvec_shared_", "matmul_", "embedding_", "matvec_experts_", "matvec_experts_shared_", "matmul_experts_"];
        var tags = new HashSet<string>();
        foreach (var (name, variant) in Variants)
        {
            string tag;
            try
            {
                tag = variant.Format.ShaderTag(variant.Parameters);
            }
            catch (NotSupportedException e)
            {
                // A format without shaders of its own says so (low-rank runs as linears of its factors).
                Assert.Contains("no shader", e.Message);
                continue;
            }
            tags.Add(tag);
            foreach (string kind in kinds)
                Assert.True(embedded.Contains(kind + tag), $"{name}: no embedded shader variant '{kind}{tag}'");
            ShaderLibrary.Get("matvec_" + tag);
        }
        // And no weight shader is left over from a format the table no longer has.
        foreach (string shader in embedded.Where(v => v.StartsWith("matvec_", StringComparison.Ordinal) && !v.StartsWith("matvec_experts_", StringComparison.Ordinal)))
        {
            string tag = shader["matvec_".Length..];
            Assert.Contains(tag.StartsWith("shared_", StringComparison.Ordinal) ? tag["shared_".Length..] : tag, tags);
        }
    }

    [Fact]
    public void Every_format_has_a_default_encoder_or_says_it_has_none()
    {
        foreach (var format in WeightTypes.All)
        {
            IWeightEncoder encoder;
            try
            {
                encoder = WeightEncoders.Get(format.Type);
            }
            catch (NotSupportedException e)
            {
                Assert.Contains($"no encoder for weight format {format.Name}", e.Message);
                continue;
            }
            Assert.Equal(format.Type, encoder.Type);
            Assert.Same(format, WeightTypes.Get(format.Type));
            Assert.True(WeightTypes.TryGet(format.Name, out var byName));
            Assert.Same(format, byName);
        }
    }

    [Theory]
    [MemberData(nameof(VariantNames))]
    public void Measured_bits_per_weight_match_the_formula(string name)
    {
        // Rows a multiple of 8 (above every rank for low-rank) and columns of 256: no padding in any format, so only
        // per-row and per-tensor data are extra.
        var variant = Variants[name];
        int rows = variant.Type == WeightType.LowRank ? 64 : 8, columns = 768;
        var encoded = Encode(variant, "w", rows, columns);
        double formula = variant.Format.BitsPerWeight(variant.Parameters);
        double expected = variant.Type switch
        {
            // A f32 scale per row and the rotation's signs, one bit per column and per row.
            WeightType.Pcdvq => formula + (32.0 * rows + columns + rows) / (rows * columns),
            // Low-rank stores nothing of its own (its factors are companions): the formula is 0.
            _ => formula,
        };
        Assert.Equal(expected, WeightFormatChecks.MeasuredBitsPerWeight(encoded, countCompanions: false), 12);
        Assert.Equal(encoded.Info.Layout.TotalBytes, encoded.Data.Length);
    }
}
