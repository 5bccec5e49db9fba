namespace Engine.Runtime.Vulkan;

/// <summary>
/// How the mat-vec (matvec.comp) runs on one device: threads and rows per workgroup, how the partial sums are
/// reduced, and up to how many tokens a product takes the mat-vec (each weight read once for all of them) rather
/// than the tiled mat-mat. Chosen per device; ENGINE_MATVEC overrides any field for tuning a new device, e.g.
/// <c>ENGINE_MATVEC=workgroup=128,rows=4,lowbitrows=8,reduce=shared,columns=4</c>.
/// <para>A CPU implementation (lavapipe: 8-wide SIMD lanes, one subgroup at a time, every buffer load a loop over
/// the lanes) gets one subgroup per workgroup, so a subgroupAdd is the whole reduction and no barrier is left, and
/// many rows per workgroup, so each input block loaded serves them all. A GPU gets four subgroups per workgroup
/// (llama.cpp's DMMV_WG_SIZE_LARGE: more loads in flight per SM) and two rows (its NUM_ROWS for the legacy
/// quantizations), four for formats under 8 bits per weight (as llama.cpp gives IQ types more): a thread reads a
/// block's inputs (4 bytes each, from cache) once for all its rows, and below 8 bits a block's weights are fewer
/// bytes than its inputs, so more rows keep cache traffic from limiting what memory delivers. The partial sums are
/// reduced by subgroupAdd, then a shared-memory step across the subgroups. Without subgroup arithmetic the
/// <c>REDUCE_SHARED</c> variants reduce by a shared-memory tree.</para>
/// </summary>
/// <param name="Workgroup">Threads per workgroup (a power of two).</param>
/// <param name="Rows">Rows per workgroup (even: SwiGLU row pairs stay in one workgroup).</param>
/// <param name="LowBitRows">Rows per workgroup for formats under 8 bits per weight (even).</param>
/// <param name="SubgroupReduce">subgroupAdd reductions (the device has subgroup arithmetic in compute shaders).</param>
/// <param name="OneSubgroup">With <paramref name="SubgroupReduce"/>: the workgroup is exactly one subgroup.</param>
/// <param name="MaxColumns">Products of up to this many tokens (at most <see cref="ColumnLimit"/>) take the mat-vec.</param>
internal sealed record MatVecTuning(uint Workgroup, uint Rows, uint LowBitRows, bool SubgroupReduce, bool OneSubgroup, int MaxColumns)
{
    public const string EnvironmentVariable = "ENGINE_MATVEC";

    /// <summary>The most input columns one mat-vec multiplies (llama.cpp's mul_mat_vec_max_cols).</summary>
    public const int ColumnLimit = 8;

    /// <summary>The choice for <paramref name="context"/>'s device, with ENGINE_MATVEC applied.</summary>
    public static MatVecTuning For(VulkanContext context)
    {
        var features = context.Features;  // subgroup arithmetic is off here where ENGINE_VULKAN_DISABLE names it
        return Default(context.Info.IsCpu, features.SubgroupSize, features.SubgroupArithmetic)
            .With(Environment.GetEnvironmentVariable(EnvironmentVariable));
    }

    /// <summary>The choice for a device of this kind, subgroup size and subgroup support.</summary>
    public static MatVecTuning Default(bool cpu, uint subgroupSize, bool subgroupArithmetic)
    {
        uint size = Math.Clamp(subgroupSize, 4u, 128u);
        if (cpu)
            return new MatVecTuning(size, 16, 16, subgroupArithmetic, subgroupArithmetic, ColumnLimit);
        return new MatVecTuning(Math.Min(4 * size, 256u), 2, 4, subgroupArithmetic, false, ColumnLimit);
    }

    /// <summary>This tuning with the fields a <c>key=value,…</c> list names replaced (workgroup, rows (both), lowbitrows, reduce=subgroup|shared, columns).</summary>
    public MatVecTuning With(string? overrides)
    {
        if (string.IsNullOrWhiteSpace(overrides)) return this;
        var tuning = this;
        foreach (string part in overrides.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] pair = part.Split('=', 2, StringSplitOptions.TrimEntries);
            string value = pair.Length == 2 ? pair[1] : "";
            tuning = pair[0] switch
            {
                "workgroup" when uint.TryParse(value, out uint w) && w is >= 1 and <= 1024 && uint.IsPow2(w) =>
                    tuning with { Workgroup = w, OneSubgroup = tuning.OneSubgroup && w <= Workgroup },
                "rows" when uint.TryParse(value, out uint r) && r is >= 2 and <= 64 && r % 2 == 0 => tuning with { Rows = r, LowBitRows = r },
                "lowbitrows" when uint.TryParse(value, out uint r) && r is >= 2 and <= 64 && r % 2 == 0 => tuning with { LowBitRows = r },
                "reduce" when value == "shared" => tuning with { SubgroupReduce = false, OneSubgroup = false },
                "reduce" when value == "subgroup" && tuning.SubgroupReduce => tuning,
                "columns" when int.TryParse(value, out int c) && c is >= 0 and <= ColumnLimit => tuning with { MaxColumns = c },
                _ => throw new ArgumentException($"{EnvironmentVariable}: '{part}' is not workgroup=POWER_OF_TWO, rows=EVEN or lowbitrows=EVEN (2-64), reduce=shared|subgroup (where supported) or columns=0..{ColumnLimit}"),
            };
        }
        return tuning;
    }

    /// <summary>The shader variant for an op prefix (<c>matvec_</c>, <c>matvec_experts_</c>): the shared-memory one without subgroup reductions.</summary>
    public string Variant(string op) => SubgroupReduce ? op : op + "shared_";

    /// <summary>Rows per workgroup for a format of <paramref name="bitsPerWeight"/>.</summary>
    public uint RowsFor(double bitsPerWeight) => bitsPerWeight < 8 ? LowBitRows : Rows;

    /// <summary>
    /// Specialization constants 0-5 of matvec.comp: <paramref name="rows"/> per workgroup (<see cref="RowsFor"/>),
    /// <paramref name="columns"/> tokens over input rows of <paramref name="inputColumns"/>, the FUSE_* bits used.
    /// </summary>
    public uint[] Constants(uint rows, int columns, int inputColumns, uint fusions) =>
        [Workgroup, rows, (uint)columns, OneSubgroup ? 1u : 0u, inputColumns % 4 == 0 ? 1u : 0u, fusions];

    /// <summary>Workgroups for <paramref name="matrixRows"/> rows at <paramref name="rows"/> per workgroup.</summary>
    public static uint Groups(int matrixRows, uint rows) => ((uint)matrixRows + rows - 1) / rows;

    public override string ToString() =>
        $"workgroup={Workgroup},rows={Rows},lowbitrows={LowBitRows},reduce={(SubgroupReduce ? OneSubgroup ? "subgroup" : "subgroup+shared" : "shared")},columns={MaxColumns}";
}
