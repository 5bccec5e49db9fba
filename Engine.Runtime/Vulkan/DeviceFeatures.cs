namespace Engine.Runtime.Vulkan;

/// <summary>
/// Optional shader capabilities of a Vulkan device, as queried at start-up and enabled at device creation (only
/// those the device has, less those switched off by <see cref="DisableEnvironmentVariable"/>). Kernels choose
/// their variants from these flags; every kernel keeps a variant that needs none of them.
/// </summary>
public sealed record DeviceFeatures
{
    /// <summary>Comma list of feature names (<see cref="KnownNames"/>) to treat as absent, for testing fallbacks.</summary>
    public const string DisableEnvironmentVariable = "ENGINE_VULKAN_DISABLE";

    /// <summary>No optional feature: a Vulkan 1.2 device with nothing beyond the core.</summary>
    public static DeviceFeatures None { get; } = new();

    /// <summary>16-bit types in storage buffers (<c>storageBuffer16BitAccess</c>).</summary>
    public bool Storage16 { get; init; }

    /// <summary>16-bit types in uniform and storage buffers (<c>uniformAndStorageBuffer16BitAccess</c>).</summary>
    public bool UniformStorage16 { get; init; }

    /// <summary>8-bit types in storage buffers (<c>storageBuffer8BitAccess</c>).</summary>
    public bool Storage8 { get; init; }

    /// <summary>8-bit types in uniform and storage buffers (<c>uniformAndStorageBuffer8BitAccess</c>).</summary>
    public bool UniformStorage8 { get; init; }

    /// <summary>float16 arithmetic in shaders (<c>shaderFloat16</c>).</summary>
    public bool Float16 { get; init; }

    /// <summary>int8 arithmetic in shaders (<c>shaderInt8</c>).</summary>
    public bool Int8 { get; init; }

    /// <summary>int16 arithmetic in shaders (<c>shaderInt16</c>).</summary>
    public bool Int16 { get; init; }

    /// <summary>float64 arithmetic in shaders (<c>shaderFloat64</c>).</summary>
    public bool Float64 { get; init; }

    /// <summary>Subgroup arithmetic (<c>subgroupAdd</c>, …) in compute shaders.</summary>
    public bool SubgroupArithmetic { get; init; }

    /// <summary>Subgroup shuffles in compute shaders.</summary>
    public bool SubgroupShuffle { get; init; }

    /// <summary>The default subgroup size (a property: reported even when subgroup features are disabled).</summary>
    public uint SubgroupSize { get; init; }

    /// <summary>Smallest and largest subgroup size a pipeline may require (equal to <see cref="SubgroupSize"/> without size control).</summary>
    public uint MinSubgroupSize { get; init; }

    public uint MaxSubgroupSize { get; init; }

    /// <summary><c>subgroupSizeControl</c> and <c>computeFullSubgroups</c> (Vulkan 1.3): a pipeline may fix its subgroup size.</summary>
    public bool SubgroupSizeControl { get; init; }

    /// <summary>Integer dot products (<c>VK_KHR_shader_integer_dot_product</c>, core in Vulkan 1.3).</summary>
    public bool IntegerDotProduct { get; init; }

    /// <summary>The packed 4×8-bit dot product is accelerated in hardware (signed or unsigned), not emulated.</summary>
    public bool IntegerDotProduct4x8Accelerated { get; init; }

    /// <summary><c>VK_KHR_cooperative_matrix</c> in compute shaders.</summary>
    public bool CooperativeMatrix { get; init; }

    /// <summary>The matrix shapes and types <c>vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR</c> lists.</summary>
    public IReadOnlyList<CooperativeMatrixShape> CooperativeMatrixShapes { get; init; } = [];

    /// <summary><c>VK_NV_cooperative_matrix2</c> (workgroup-scope, flexible-dimension matrices).</summary>
    public bool CooperativeMatrix2 { get; init; }

    /// <summary>What <see cref="DisableEnvironmentVariable"/> (or the caller) switched off.</summary>
    public DeviceFeatureSet Disabled { get; init; }

    /// <summary>The names <see cref="ParseDisabled"/> accepts, each with what it switches off.</summary>
    public static IReadOnlyDictionary<string, DeviceFeatureSet> KnownNames { get; } = new Dictionary<string, DeviceFeatureSet>(StringComparer.OrdinalIgnoreCase)
    {
        ["fp16"] = DeviceFeatureSet.Float16 | DeviceFeatureSet.Storage16,
        ["int8"] = DeviceFeatureSet.Int8 | DeviceFeatureSet.Storage8,
        ["int16"] = DeviceFeatureSet.Int16,
        ["fp64"] = DeviceFeatureSet.Float64,
        ["subgroup"] = DeviceFeatureSet.Subgroup,
        ["dot"] = DeviceFeatureSet.IntegerDotProduct,
        ["coopmat"] = DeviceFeatureSet.CooperativeMatrix | DeviceFeatureSet.CooperativeMatrix2,
        ["coopmat2"] = DeviceFeatureSet.CooperativeMatrix2,
        ["all"] = DeviceFeatureSet.All,
    };

    /// <summary>These features with <paramref name="disabled"/> switched off (and remembered in <see cref="Disabled"/>).</summary>
    public DeviceFeatures Without(DeviceFeatureSet disabled)
    {
        if (disabled == DeviceFeatureSet.None) return this;
        bool off(DeviceFeatureSet f) => (disabled & f) != 0;
        return this with
        {
            Float16 = Float16 && !off(DeviceFeatureSet.Float16),
            Storage16 = Storage16 && !off(DeviceFeatureSet.Storage16),
            UniformStorage16 = UniformStorage16 && !off(DeviceFeatureSet.Storage16),
            Int8 = Int8 && !off(DeviceFeatureSet.Int8),
            Storage8 = Storage8 && !off(DeviceFeatureSet.Storage8),
            UniformStorage8 = UniformStorage8 && !off(DeviceFeatureSet.Storage8),
            Int16 = Int16 && !off(DeviceFeatureSet.Int16),
            Float64 = Float64 && !off(DeviceFeatureSet.Float64),
            SubgroupArithmetic = SubgroupArithmetic && !off(DeviceFeatureSet.Subgroup),
            SubgroupShuffle = SubgroupShuffle && !off(DeviceFeatureSet.Subgroup),
            SubgroupSizeControl = SubgroupSizeControl && !off(DeviceFeatureSet.Subgroup),
            MinSubgroupSize = off(DeviceFeatureSet.Subgroup) ? SubgroupSize : MinSubgroupSize,
            MaxSubgroupSize = off(DeviceFeatureSet.Subgroup) ? SubgroupSize : MaxSubgroupSize,
            IntegerDotProduct = IntegerDotProduct && !off(DeviceFeatureSet.IntegerDotProduct),
            IntegerDotProduct4x8Accelerated = IntegerDotProduct4x8Accelerated && !off(DeviceFeatureSet.IntegerDotProduct),
            CooperativeMatrix = CooperativeMatrix && !off(DeviceFeatureSet.CooperativeMatrix),
            CooperativeMatrixShapes = off(DeviceFeatureSet.CooperativeMatrix) ? [] : CooperativeMatrixShapes,
            CooperativeMatrix2 = CooperativeMatrix2 && !off(DeviceFeatureSet.CooperativeMatrix2),
            Disabled = Disabled | disabled,
        };
    }

    /// <summary>Parses a comma list such as <c>fp16,int8,subgroup,dot,coopmat</c>; null or blank is none.</summary>
    /// <exception cref="VulkanException">A name is not one of <see cref="KnownNames"/>.</exception>
    public static DeviceFeatureSet ParseDisabled(string? text)
    {
        var set = DeviceFeatureSet.None;
        if (string.IsNullOrWhiteSpace(text)) return set;
        foreach (string part in text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!KnownNames.TryGetValue(part, out var features))
                throw new VulkanException($"{DisableEnvironmentVariable}: unknown feature '{part}' (known: {string.Join(", ", KnownNames.Keys)})");
            set |= features;
        }
        return set;
    }

    /// <summary>The features <see cref="DisableEnvironmentVariable"/> switches off.</summary>
    public static DeviceFeatureSet DisabledFromEnvironment() =>
        ParseDisabled(Environment.GetEnvironmentVariable(DisableEnvironmentVariable));

    /// <summary>The features present, in words (<c>fp16 storage16 storage8 int8 int16 subgroup-arith dot</c> …).</summary>
    public IReadOnlyList<string> Words()
    {
        var words = new List<string>();
        if (Float16) words.Add("fp16");
        if (Storage16) words.Add("storage16");
        if (Int8) words.Add("int8");
        if (Storage8) words.Add("storage8");
        if (Int16) words.Add("int16");
        if (Float64) words.Add("fp64");
        if (SubgroupArithmetic) words.Add("subgroup-arith");
        if (SubgroupShuffle) words.Add("subgroup-shuffle");
        if (SubgroupSizeControl) words.Add($"subgroup-size-{MinSubgroupSize}-{MaxSubgroupSize}");
        if (IntegerDotProduct) words.Add(IntegerDotProduct4x8Accelerated ? "dot(accel)" : "dot");
        if (CooperativeMatrix) words.Add(CooperativeMatrixShapes.Count > 0 ? $"coopmat({CooperativeMatrixShapes.Count} shapes)" : "coopmat");
        if (CooperativeMatrix2) words.Add("coopmat2");
        return words;
    }

    /// <summary>One line: the words, or "none", and what was disabled.</summary>
    public override string ToString()
    {
        var words = Words();
        string text = words.Count == 0 ? "none" : string.Join(' ', words);
        if (Disabled != DeviceFeatureSet.None) text += $" (disabled: {NamesOf(Disabled)})";
        return text;
    }

    /// <summary>The shortest list of <see cref="KnownNames"/> (except "all") that covers <paramref name="set"/>.</summary>
    public static string NamesOf(DeviceFeatureSet set)
    {
        if (set == DeviceFeatureSet.All) return "all";
        var names = new List<string>();
        var left = set;
        foreach (var (name, features) in KnownNames.Where(p => p.Value != DeviceFeatureSet.All).OrderByDescending(p => System.Numerics.BitOperations.PopCount((uint)p.Value)))
        {
            if ((left & features) == features && features != DeviceFeatureSet.None)
            {
                names.Add(name);
                left &= ~features;
            }
        }
        if (left != DeviceFeatureSet.None) names.Add(left.ToString());
        return string.Join(',', names);
    }
}

/// <summary>Groups of optional features, as <see cref="DeviceFeatures.Without"/> switches them off.</summary>
[Flags]
public enum DeviceFeatureSet
{
    None = 0,
    Float16 = 1 << 0,
    Storage16 = 1 << 1,
    Int8 = 1 << 2,
    Storage8 = 1 << 3,
    Int16 = 1 << 4,
    Float64 = 1 << 5,
    Subgroup = 1 << 6,
    IntegerDotProduct = 1 << 7,
    CooperativeMatrix = 1 << 8,
    CooperativeMatrix2 = 1 << 9,
    All = (1 << 10) - 1,
}

/// <summary>One cooperative-matrix configuration a device supports: C(M×N) += A(M×K)·B(K×N).</summary>
public sealed record CooperativeMatrixShape(
    uint M, uint N, uint K, string AType, string BType, string CType, string ResultType, bool SaturatingAccumulation, string Scope)
{
    public override string ToString() =>
        $"{M}x{N}x{K} {AType},{BType},{CType}->{ResultType}{(SaturatingAccumulation ? " saturating" : "")} ({Scope} scope)";
}
