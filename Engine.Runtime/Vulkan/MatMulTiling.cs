namespace Engine.Runtime.Vulkan;

/// <summary>
/// The tiling of the mat-mat shader (matmul.comp), i.e. its specialization constants: a workgroup of
/// <see cref="Workgroup"/> invocations in a <see cref="RowThreads"/> x (Workgroup / RowThreads) grid, each keeping
/// <see cref="RowsPerThread"/> x <see cref="TokensPerThread"/> outputs in registers; <see cref="Depth"/> columns per
/// shared-memory slab (0: the direct path, no shared memory); <see cref="Split"/> column ranges (split-k).
/// </summary>
/// <remarks>ENGINE_MATMUL overrides fields of every choice, for tuning a new device, e.g.
/// <c>ENGINE_MATMUL=workgroup=256,rowthreads=16,rows=8,tokens=8,depth=16,split=1</c>.</remarks>
internal readonly record struct MatMulTiling(uint Workgroup, uint RowThreads, uint RowsPerThread, uint TokensPerThread, uint Depth, uint Split = 1)
{
    public const string EnvironmentVariable = "ENGINE_MATMUL";

    /// <summary>ENGINE_MATMUL as the process started with it.</summary>
    public static string? Overrides { get; } = Environment.GetEnvironmentVariable(EnvironmentVariable);

    /// <summary>Workgroups a GPU runs at once, assumed (Vulkan does not report SM counts): about an H100's 132 SMs.</summary>
    public const int GpuParallelWorkgroups = 128;

    /// <summary>Workgroup size of the split-k reduction dispatch.</summary>
    public const uint ReduceWorkgroup = 64;

    public uint TileRows => RowThreads * RowsPerThread;

    public uint TileTokens => Workgroup / RowThreads * TokensPerThread;

    public bool Staged => Depth > 0;

    /// <summary>Shared memory the shader declares, in bytes (matmul.comp: two slabs of [Depth][tile + 4] floats each).</summary>
    public uint SharedBytes => Staged ? 2 * Depth * (TileRows + 4 + TileTokens + 4) * sizeof(float) : 8;

    /// <summary>matmul.comp's constants 0-8: WORKGROUP, WR, TM, TN, BK, VEC4, SPLIT, REDUCE, OUT4.</summary>
    /// <param name="vec4">Input rows 16-byte aligned (columns a multiple of 4): read as vec4s.</param>
    /// <param name="out4">Outputs of 4 consecutive rows 16-byte aligned (8-byte pairs under SwiGLU): the direct path's epilogue stores them at once.</param>
    public uint[] Constants(bool vec4, bool out4) =>
        [Workgroup, RowThreads, RowsPerThread, TokensPerThread, Depth, vec4 ? 1u : 0u, Split, 0, out4 && !Staged ? 1u : 0u];

    /// <summary>The split-k reduction: the same shader with REDUCE, one invocation per output.</summary>
    public uint[] ReduceConstants(bool vec4) => [ReduceWorkgroup, ReduceWorkgroup, 4, 4, 0, vec4 ? 1u : 0u, Split, 1, 0];

    /// <summary>This tiling with the fields a <c>key=value,…</c> list names replaced (workgroup, rowthreads, rows, tokens, depth, split); checked by <see cref="Check"/>.</summary>
    public MatMulTiling With(string? overrides)
    {
        if (string.IsNullOrWhiteSpace(overrides)) return this;
        var tiling = this;
        foreach (string part in overrides.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] pair = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (pair.Length != 2 || !uint.TryParse(pair[1], out uint value) || value > 1024)
                throw new ArgumentException($"{EnvironmentVariable}: '{part}' is not a field=number pair");
            tiling = pair[0] switch
            {
                "workgroup" => tiling with { Workgroup = value },
                "rowthreads" => tiling with { RowThreads = value },
                "rows" => tiling with { RowsPerThread = value },
                "tokens" => tiling with { TokensPerThread = value },
                "depth" => tiling with { Depth = value },
                "split" => tiling with { Split = value },
                _ => throw new ArgumentException($"{EnvironmentVariable}: '{pair[0]}' is not workgroup, rowthreads, rows, tokens, depth or split"),
            };
        }
        return tiling;
    }

    public override string ToString() =>
        $"workgroup={Workgroup},rowthreads={RowThreads},rows={RowsPerThread},tokens={TokensPerThread},depth={Depth},split={Split}";

    /// <summary>Throws unless the shader can run this tiling on a device with <paramref name="maxSharedBytes"/> of shared memory.</summary>
    public void Check(uint maxSharedBytes)
    {
        if (Workgroup == 0 || RowThreads == 0 || Workgroup % RowThreads != 0)
            throw new ArgumentException($"mat-mat tiling {this}: the workgroup is not a whole grid of {RowThreads} rows");
        if (RowsPerThread == 0 || RowsPerThread % 4 != 0 || TokensPerThread == 0 || TokensPerThread % 4 != 0)
            throw new ArgumentException($"mat-mat tiling {this}: rows and tokens per invocation must be multiples of 4");
        if (Depth % 8 != 0 || Split == 0 || (Split > 1 && !Staged))
            throw new ArgumentException($"mat-mat tiling {this}: the slab depth must be a multiple of 8, and split-k needs the staged path");
        if (SharedBytes > maxSharedBytes)
            throw new ArgumentException($"mat-mat tiling {this}: {SharedBytes} bytes of shared memory, the device has {maxSharedBytes}");
    }

    /// <summary>
    /// The tiling for a product of <paramref name="rows"/> x <paramref name="columns"/> weights by <paramref name="tokens"/>
    /// tokens (for experts: a stack's expert rows and the batch's tokens, the most slots one expert can get).
    /// </summary>
    public static MatMulTiling Choose(VulkanDeviceInfo device, int rows, int columns, int tokens, bool experts)
    {
        if (device.IsCpu)
        {
            // lavapipe: one subgroup of SIMD lanes, direct loads, large register blocks (see matmul.comp). Every load
            // costs a loop over the lanes, so a lane's 32 x 16 block makes each decoded weight feed 16 FMAs and each
            // input 32; tiles of 128 rows (the lanes in a 4 x 2 grid) divide the usual hidden sizes. Short batches take
            // 16-row blocks over fewer tokens. Larger blocks run little faster and take LLVM much longer to compile.
            uint lanes = Math.Clamp(device.SubgroupSize, 4u, 16u);
            if (tokens > 16) return new MatMulTiling(lanes, Math.Max(lanes / 2, 1), 32, 16, 0);
            uint tokensPerLane = tokens <= 4 ? 4u : tokens <= 8 ? 8u : 16u;
            return new MatMulTiling(lanes, lanes, 16, tokensPerLane, 0);
        }

        // GPUs: 128 x 128 tiles of 256 invocations with 8 x 8 outputs each, slabs of 8 columns (16.5 KiB of shared
        // memory, double-buffered); smaller tiles for short batches.
        var tiling = tokens > 64 ? new MatMulTiling(256, 16, 8, 8, 8)
            : tokens > 32 ? new MatMulTiling(256, 16, 8, 4, 8)
            : new MatMulTiling(128, 16, 4, 4, 8);
        if (experts) return tiling;
        // Split-k where the tiles would leave most of the GPU idle and the rows are long enough to share out.
        long tiles = (long)((rows + tiling.TileRows - 1) / tiling.TileRows) * ((tokens + tiling.TileTokens - 1) / tiling.TileTokens);
        if (tiles >= GpuParallelWorkgroups || columns < 2048) return tiling;
        long split = Math.Min(Math.Min(8, (GpuParallelWorkgroups + tiles - 1) / tiles), columns / 512);
        return split >= 2 ? tiling with { Split = (uint)split } : tiling;
    }
}
