using System.Runtime.CompilerServices;
using Engine.Runtime.Vulkan;
using Engine.Shaders;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// Every compiled shader variant's push-constant block, read from its SPIR-V, against the C# struct the Vulkan
/// backend pushes for it (private nested types of VulkanBackend, and WeightPush): member order, offsets, sizes,
/// scalar kinds, array lengths, names and total size.
/// </summary>
public sealed class PushConstantLayoutTests
{
    /// <summary>
    /// Shader variant → the C# struct the backend pushes to it, by the struct's simple name, found anywhere in
    /// Engine.Runtime (nested private types included). First match wins; a trailing '*' matches any suffix.
    /// A new shader with a push-constant block must be added here.
    /// </summary>
    public static readonly IReadOnlyList<(string Variant, string Struct)> Structs =
    [
        ("matvec_*", "WeightPush"),
        ("matmul_*", "WeightPush"),
        ("embedding_*", "WeightPush"),
        ("binary", "ElementwisePush"),
        ("activate", "ElementwisePush"),
        ("swiglu", "ElementwisePush"),
        ("copy", "ElementwisePush"),
        ("copy_f16", "ElementwisePush"),
        ("token_shift", "ElementwisePush"),
        ("rmsnorm", "NormPush"),
        ("layernorm", "NormPush"),
        ("rope", "RopePush"),
        ("rope_positions", "RopePositionsPush"),
        ("rope_kv", "RopeKvPush"),
        ("rope_kv_f16", "RopeKvPush"),
        ("attention*", "AttentionPush"),
        ("hadamard", "HadamardPush"),
        ("hadamard_experts", "HadamardPush"),
        ("conv1d", "Conv1dPush"),
        ("selective_scan", "ScanPush"),
        ("ssd_scores", "ScanPush"),
        ("ssd_scan", "ScanPush"),
        ("wkv*", "WkvPush"),
        ("moe_route", "MoeRoutePush"),
        ("moe_combine", "MoeCombinePush"),
        ("softmax", "SoftmaxPush"),
    ];

    public static TheoryData<string> Variants => [.. ShaderLibrary.Variants.Order(StringComparer.Ordinal)];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Push_block_matches_the_struct_the_backend_pushes(string variant)
    {
        var module = SpirvModule.Parse(ShaderLibrary.Get(variant));
        if (module.PushConstants is not { } block)
            return;  // no push constants (or none the optimizer kept): nothing the backend pushes can disagree
        Assert.True(block.IsBlock, $"{variant}: the push-constant struct is not decorated Block");
        Assert.True(block.Size <= 128, $"{variant}: a {block.Size}-byte push block exceeds the 128 bytes (maxPushConstantsSize) every Vulkan device allows");
        string structName = StructFor(variant)
            ?? throw new Xunit.Sdk.XunitException(
                $"shader variant '{variant}' has a push-constant block ({block.Members.Count} members, {block.Size} bytes) but no C# struct is "
                + $"registered for it: add (\"{variant}\", \"<struct name>\") to PushConstantLayoutTests.Structs");
        var type = FindStruct(structName, variant);
        var named = module.HasDebugNames ? null : ShaderDebugBuild.Module(variant).PushConstants;
        var problems = PushConstantLayout.Compare(block, type, named);
        Assert.True(problems.Count == 0,
            $"shader variant '{variant}' and {type.FullName} disagree:\n  " + string.Join("\n  ", problems));
    }

    [Fact]
    public void Every_registered_struct_exists()
    {
        var missing = Structs.Select(s => s.Struct).Distinct().Where(name => Candidates(name).Count != 1).ToList();
        Assert.True(missing.Count == 0, $"structs in PushConstantLayoutTests.Structs not found exactly once in Engine.Runtime: {string.Join(", ", missing)}");
    }

    [Fact]
    public void The_embedded_modules_have_push_blocks_to_check()
    {
        // Guards the test above from passing vacuously: the weight ops and norms do push constants.
        var block = SpirvModule.Parse(ShaderLibrary.Get("matvec_q4")).PushConstants;
        Assert.NotNull(block);
        Assert.Equal(FieldsCount(typeof(WeightPush)), block.Members.Count);
        Assert.NotNull(SpirvModule.Parse(ShaderLibrary.Get("rmsnorm")).PushConstants);
    }

    // The comparison itself, on deliberately wrong structs against the real rmsnorm block
    // (rows, dim, eps, weightLength, hasBias).

    private readonly record struct NormPushInOrder(uint Rows, uint Dim, float Eps, uint WeightLength, uint HasBias);
    private readonly record struct NormPushReordered(uint Dim, uint Rows, float Eps, uint WeightLength, uint HasBias);
    private readonly record struct NormPushShort(uint Rows, uint Dim, float Eps, uint WeightLength);
    private readonly record struct NormPushUintEps(uint Rows, uint Dim, uint Eps, uint WeightLength, uint HasBias);

    private static SpirvBlock NormBlock() => ShaderDebugBuild.Module("rmsnorm").PushConstants!;

    [Fact]
    public void A_struct_in_the_shaders_order_passes()
    {
        Assert.Empty(PushConstantLayout.Compare(NormBlock(), typeof(NormPushInOrder)));
        var embedded = SpirvModule.Parse(ShaderLibrary.Get("rmsnorm")).PushConstants!;
        Assert.Empty(PushConstantLayout.Compare(embedded, typeof(NormPushInOrder), NormBlock()));
    }

    [Fact]
    public void Reordered_fields_of_one_type_fail_by_name()
    {
        var problems = PushConstantLayout.Compare(NormBlock(), typeof(NormPushReordered));
        Assert.Contains(problems, p => p.Contains("GLSL 'rows' but C# 'Dim'"));
        Assert.Contains(problems, p => p.Contains("GLSL 'dim' but C# 'Rows'"));
        // Without names (the embedded, optimized module alone) this reordering would be invisible: offsets and sizes agree.
        var unnamed = SpirvModule.Parse(ShaderLibrary.Get("rmsnorm")).PushConstants!;
        Assert.DoesNotContain(unnamed.Members, m => m.Name is not null);
        Assert.NotEmpty(PushConstantLayout.Compare(unnamed, typeof(NormPushReordered), NormBlock()));
    }

    [Fact]
    public void A_member_added_in_glsl_fails()
    {
        var block = NormBlock();
        var extra = new SpirvMember(5, "extra", block.Size, 4, block.Members[0].Type);
        var grown = block with { Members = [.. block.Members, extra], Size = block.Size + 4 };
        var problems = PushConstantLayout.Compare(grown, typeof(NormPushInOrder));
        Assert.Contains(problems, p => p.Contains("GLSL member 5 (extra") && p.Contains("has no C# field"));
        Assert.Contains(problems, p => p.Contains("sizeof(NormPushInOrder) = 20 bytes, the GLSL block spans 24 bytes"));
    }

    [Fact]
    public void A_missing_field_or_a_wrong_scalar_type_fails()
    {
        Assert.Contains(PushConstantLayout.Compare(NormBlock(), typeof(NormPushShort)), p => p.Contains("GLSL member 4 (hasBias"));
        Assert.Contains(PushConstantLayout.Compare(NormBlock(), typeof(NormPushUintEps)), p => p.Contains("(eps): GLSL f32 is Float, C# Eps is UInt"));
    }

    [InlineArray(4)]
    private struct FourWords
    {
        private uint _element;
    }

    private struct ArrayPush
    {
#pragma warning disable CS0649 // only the layout matters
        public uint Rows;
        public FourWords Param;
        public uint Tail;
#pragma warning restore CS0649
    }

    [Fact]
    public void Glsl_arrays_match_fixed_buffers_and_inline_arrays()
    {
        var weights = SpirvModule.Parse(ShaderLibrary.Get("matvec_f16")).PushConstants!;
        var param = weights.Members[7];
        Assert.Equal((SpirvTypeKind.Array, 4u, 4u, 16u), (param.Type.Kind, param.Type.Length, param.Type.Stride, param.Size));
        Assert.Empty(PushConstantLayout.Compare(weights, typeof(WeightPush), ShaderDebugBuild.Module("matvec_f16").PushConstants));

        var fields = PushConstantLayout.FieldsOf(typeof(ArrayPush));
        Assert.Equal([("Rows", 0, 4, 1), ("Param", 4, 16, 4), ("Tail", 20, 4, 1)], fields.Select(f => (f.Name, f.Offset, f.Size, f.Length)));
        // A shorter GLSL array (uint param[3]) against the 4-word inline array: sizes and lengths differ.
        var uint32 = new SpirvType(SpirvTypeKind.UInt, 32, 4, 1, 0, 0, null, []);
        var block = new SpirvBlock("Push", "p", true,
        [
            new SpirvMember(0, "rows", 0, 4, uint32),
            new SpirvMember(1, "param", 4, 12, new SpirvType(SpirvTypeKind.Array, 32, 12, 1, 3, 4, uint32, [])),
            new SpirvMember(2, "tail", 16, 4, uint32),
        ], 20);
        var problems = PushConstantLayout.Compare(block, typeof(ArrayPush));
        Assert.Contains(problems, p => p.Contains("(param): GLSL has 3 element(s), C# Param has 4"));
        Assert.Contains(problems, p => p.Contains("(tail): GLSL offset 16, C# offset 20"));
    }

    [Theory]
    [InlineData("srcOffset", "SourceOffset")]
    [InlineData("dstStride", "DestinationStride")]
    [InlineData("kvHeads", "KvHeads")]
    [InlineData("xOffset", "XOffset")]
    [InlineData("pos0", "Pos0")]
    [InlineData("bLength", "BLength")]
    public void Glsl_and_csharp_names_match(string glsl, string csharp) =>
        Assert.Equal(PushConstantLayout.Normalize(glsl), PushConstantLayout.Normalize(csharp));

    private static string? StructFor(string variant)
    {
        foreach (var (pattern, name) in Structs)
        {
            bool match = pattern.EndsWith('*')
                ? variant.StartsWith(pattern[..^1], StringComparison.Ordinal)
                : variant == pattern;
            if (match) return name;
        }
        return null;
    }

    private static List<Type> Candidates(string name) =>
        [.. typeof(VulkanContext).Assembly.GetTypes().Where(t => t.IsValueType && t.Name == name)];

    private static Type FindStruct(string name, string variant)
    {
        var candidates = Candidates(name);
        return candidates.Count switch
        {
            1 => candidates[0],
            0 => throw new Xunit.Sdk.XunitException(
                $"shader variant '{variant}' is registered to struct '{name}', which Engine.Runtime no longer has (renamed? update PushConstantLayoutTests.Structs)"),
            _ => throw new Xunit.Sdk.XunitException(
                $"struct name '{name}' (for variant '{variant}') is ambiguous: {string.Join(", ", candidates.Select(t => t.FullName))}"),
        };
    }

    private static int FieldsCount(Type type) => PushConstantLayout.FieldsOf(type).Count;
}
