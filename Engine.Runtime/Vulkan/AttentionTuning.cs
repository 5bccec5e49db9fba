using Silk.NET.Vulkan;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// How attention runs on one device (attention.comp): which kernel, its workgroup and block sizes (specialization
/// constants) and how far a dispatch is split over key positions. CPU implementations with 8-lane subgroups and
/// subgroup arithmetic (lavapipe) get the rows kernel: a workgroup of one subgroup, 8 query rows, the lanes along the
/// head dimension. GPUs (and any other device) get the flash kernel: a block of rows per workgroup over key tiles
/// staged in shared memory, with subgroup reductions where the device has subgroup arithmetic in compute shaders and
/// shared-memory reductions where it has not.
/// </summary>
internal sealed record AttentionTuning
{
    /// <summary>The largest head dimension of each compiled variant (MAX_D), smallest first.</summary>
    public static readonly int[] HeadDimBounds = [32, 64, 96, 128, 256];

    /// <summary>The rows kernel (CPU devices), else the flash kernel.</summary>
    public required bool Rows { get; init; }

    /// <summary>Flash: reduce rows with subgroupMax/subgroupAdd (needs subgroup arithmetic in compute shaders).</summary>
    public bool SubgroupArithmetic { get; init; }


    /// <summary>Flash: invocations per workgroup.</summary>
    public uint Workgroup { get; init; } = 128;

    /// <summary>Flash: invocations sharing one row (a power of two; the subgroup size for subgroup reductions).</summary>
    public uint RowLanes { get; init; } = 32;

    /// <summary>Flash: keys per shared-memory tile, a multiple of <see cref="RowLanes"/>.</summary>
    public uint Tile { get; init; } = 32;

    /// <summary>Flash: rows each group of <see cref="RowLanes"/> invocations carries (block = groups × this).</summary>
    public uint RowsPerLanes { get; init; } = 4;

    /// <summary>The device's shared memory per workgroup, in bytes (the flash kernel's tile and block fit it).</summary>
    public uint SharedBytes { get; init; } = 32768;

    /// <summary>Split-k aims at this many workgroups per dispatch (enough to keep every core or SM busy).</summary>
    public int TargetWorkgroups { get; init; } = 8;

    /// <summary>A split covers at least this many keys.</summary>
    public int MinKeysPerSplit { get; init; } = 64;

    public int MaxSplits { get; init; } = 32;

    /// <summary>The partial results of all splits stay below this many floats.</summary>
    public long MaxPartialFloats { get; init; } = 1L << 24;

    public static unsafe AttentionTuning For(VulkanContext context)
    {
        var subgroup = new PhysicalDeviceSubgroupProperties { SType = StructureType.PhysicalDeviceSubgroupProperties };
        var properties = new PhysicalDeviceProperties2 { SType = StructureType.PhysicalDeviceProperties2, PNext = &subgroup };
        context.Vk.GetPhysicalDeviceProperties2(context.PhysicalDevice, &properties);
        bool compute = (subgroup.SupportedStages & ShaderStageFlags.ComputeBit) != 0;
        bool arithmetic = compute && (subgroup.SupportedOperations & SubgroupFeatureFlags.ArithmeticBit) != 0;
        uint size = subgroup.SubgroupSize;
        // The rows kernel is one 8-lane subgroup that adds across its lanes.
        if (context.Info.IsCpu && arithmetic && size == 8)
            return ForCpu(Environment.ProcessorCount, context.Limits.MaxComputeSharedMemorySize);
        bool discrete = properties.Properties.DeviceType == PhysicalDeviceType.DiscreteGpu;
        int target = context.Info.IsCpu ? 4 * Environment.ProcessorCount : discrete ? 256 : 64;
        return ForGpu(size, arithmetic, context.Limits.MaxComputeSharedMemorySize, target);
    }

    /// <summary>A CPU implementation (lavapipe): the rows kernel (the flash kernel without subgroups for odd head dims), a few workgroups per core.</summary>
    public static AttentionTuning ForCpu(int cores, uint sharedBytes) => new()
    {
        Rows = true,
        SharedBytes = sharedBytes,
        TargetWorkgroups = Math.Max(4, 4 * cores),
        MinKeysPerSplit = 128,
        MaxSplits = 16,
    };

    /// <summary>
    /// A GPU: four row groups of one subgroup each per workgroup; split-k aims at <paramref name="targetWorkgroups"/>
    /// (Vulkan does not tell the number of SMs or compute units: 256 for a discrete GPU covers two workgroups on each of
    /// an H100's 132 SMs).
    /// </summary>
    public static AttentionTuning ForGpu(uint subgroupSize, bool subgroupArithmetic, uint sharedBytes, int targetWorkgroups)
    {
        bool usable = subgroupSize is >= 4 and <= 64 && uint.IsPow2(subgroupSize);
        uint rowLanes = usable ? subgroupSize : 32;
        return new AttentionTuning
        {
            Rows = false,
            SubgroupArithmetic = subgroupArithmetic && usable,
            RowLanes = rowLanes,
            Workgroup = 4 * rowLanes,
            Tile = Math.Max(32u, rowLanes),
            RowsPerLanes = 4,
            SharedBytes = sharedBytes,
            TargetWorkgroups = targetWorkgroups,
            MinKeysPerSplit = 256,
            MaxSplits = 32,
        };
    }

    /// <summary>The smallest compiled head-dimension bound that holds <paramref name="headDim"/>.</summary>
    public static int HeadDimBound(int headDim)
    {
        foreach (int bound in HeadDimBounds)
        {
            if (headDim <= bound) return bound;
        }
        throw new NotSupportedException($"head dimension {headDim} is above the attention shaders' {HeadDimBounds[^1]}");
    }

    /// <summary>The rows kernel reads vec4s: other head dims run the flash kernel.</summary>
    private bool RowsFor(int headDim) => Rows && headDim % 4 == 0;

    /// <summary>Rows: query rows per workgroup (the shader's ROWS_BLOCK).</summary>
    private const int RowsBlock = 8;

    /// <summary>The kernel variant for a head dimension and a cache's element type (f16: the "_f16" twin), and its specialization constants.</summary>
    public (string Name, uint[] Constants) Kernel(int headDim, ElementType cache)
    {
        int bound = HeadDimBound(headDim);
        string suffix = cache == ElementType.F16 ? "_f16" : "";
        if (RowsFor(headDim))
            return ((bound == HeadDimBounds[^1] ? "attention" : $"attention_rows_d{bound}") + suffix, []);
        var (tile, rowsPerLanes) = FlashBlock(bound);
        return ($"attention_flash{(SubgroupArithmetic ? "" : "_shared")}_d{bound}{suffix}", [Workgroup, RowLanes, tile, rowsPerLanes]);
    }

    /// <summary>Query rows one workgroup holds at most.</summary>
    public int BlockRows(int headDim) =>
        RowsFor(headDim) ? RowsBlock : (int)(Workgroup / RowLanes * FlashBlock(HeadDimBound(headDim)).RowsPerLanes);

    /// <summary>Flash tile and rows per lane group whose shared arrays fit the device: fewer rows first, then a smaller tile.</summary>
    private (uint Tile, uint RowsPerLanes) FlashBlock(int bound)
    {
        uint tile = Tile, rowsPerLanes = RowsPerLanes, groups = Workgroup / RowLanes;
        long Bytes() => 4L * (groups * rowsPerLanes * bound + tile * (bound + 1) + groups * rowsPerLanes * tile + Workgroup);
        while (Bytes() > SharedBytes && rowsPerLanes > 1) rowsPerLanes /= 2;
        while (Bytes() > SharedBytes && tile > RowLanes) tile -= RowLanes;
        if (Bytes() > SharedBytes)
            throw new NotSupportedException($"attention at head dimension bound {bound} needs {Bytes()} bytes of shared memory, the device has {SharedBytes}");
        return (tile, rowsPerLanes);
    }
}

/// <summary>One attention dispatch: the row blocks, the key range and its split into slices.</summary>
internal readonly record struct AttentionPlan(int Blocks, int BlockRows, int KeyBase, int SplitLength, int Splits)
{
    public static AttentionPlan Make(AttentionTuning tuning, int tokens, int pos0, int heads, int kvHeads, int headDim, bool causal, int window)
    {
        int rows = tokens * (heads / kvHeads);
        int blockRows = Math.Min(tuning.BlockRows(headDim), rows);
        int blocks = (rows + blockRows - 1) / blockRows;
        int first = causal && window > 0 ? Math.Max(0, pos0 + 1 - window) : 0;
        int keys = pos0 + tokens - first;
        int workgroups = blocks * kvHeads;
        int splits = 1;
        if (workgroups < tuning.TargetWorkgroups)
        {
            splits = (tuning.TargetWorkgroups + workgroups - 1) / workgroups;
            splits = Math.Min(splits, Math.Max(1, keys / tuning.MinKeysPerSplit));
            splits = Math.Min(splits, tuning.MaxSplits);
            long perSplit = (long)tokens * heads * (headDim + 4);
            splits = (int)Math.Max(1, Math.Min(splits, tuning.MaxPartialFloats / perSplit));
        }
        int length = (keys + splits - 1) / splits;
        if (splits > 1)
        {
            length = (length + 31) / 32 * 32;   // whole tiles and chunks in every split but the last
            splits = (keys + length - 1) / length;
        }
        return new AttentionPlan(blocks, blockRows, first, splits > 1 ? length : keys, splits);
    }
}
