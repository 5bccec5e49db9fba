using Silk.NET.Vulkan;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// GPU time per kernel from timestamps written after every dispatch (ENGINE_VULKAN_PROFILE=1), printed to standard
/// error when the backend is disposed: where a step's time goes, as llama.cpp's GGML_VK_PERF_LOGGER shows it.
/// Dispatches past the query pool's size in one submission are not timed.
/// </summary>
internal sealed unsafe class KernelProfiler : IDisposable
{
    public const string EnvironmentVariable = "ENGINE_VULKAN_PROFILE";
    private const uint MaxQueries = 16384;

    private readonly VulkanContext _context;
    private readonly QueryPool _pool;
    private readonly List<string> _names = [];
    private readonly Dictionary<string, (long Count, double Nanoseconds)> _totals = [];

    public KernelProfiler(VulkanContext context)
    {
        _context = context;
        var info = new QueryPoolCreateInfo { SType = StructureType.QueryPoolCreateInfo, QueryType = QueryType.Timestamp, QueryCount = MaxQueries };
        VulkanException.Check(context.Vk.CreateQueryPool(context.Device, in info, null, out var pool), "vkCreateQueryPool");
        _pool = pool;
    }

    public void Begin(CommandBuffer commands)
    {
        _names.Clear();
        _context.Vk.CmdResetQueryPool(commands, _pool, 0, MaxQueries);
        _context.Vk.CmdWriteTimestamp(commands, PipelineStageFlags.BottomOfPipeBit, _pool, 0);
    }

    public void AfterDispatch(CommandBuffer commands, string kernel)
    {
        if (_names.Count + 1 >= MaxQueries) return;
        _names.Add(kernel);
        _context.Vk.CmdWriteTimestamp(commands, PipelineStageFlags.BottomOfPipeBit, _pool, (uint)_names.Count);
    }

    /// <summary>Reads the finished submission's timestamps into the totals.</summary>
    public void Collect()
    {
        if (_names.Count == 0) return;
        var stamps = new ulong[_names.Count + 1];
        fixed (ulong* p = stamps)
            VulkanException.Check(_context.Vk.GetQueryPoolResults(_context.Device, _pool, 0, (uint)stamps.Length, (nuint)(stamps.Length * 8), p, 8,
                QueryResultFlags.Result64Bit | QueryResultFlags.ResultWaitBit), "vkGetQueryPoolResults");
        double period = _context.Limits.TimestampPeriod;
        for (int i = 0; i < _names.Count; i++)
        {
            var (count, ns) = _totals.GetValueOrDefault(_names[i]);
            _totals[_names[i]] = (count + 1, ns + (stamps[i + 1] - stamps[i]) * period);
        }
        _names.Clear();
    }

    public void Dispose()
    {
        double total = _totals.Values.Sum(t => t.Nanoseconds);
        Console.Error.WriteLine($"| kernel | dispatches | ms | µs each | share |");
        Console.Error.WriteLine("| --- | ---: | ---: | ---: | ---: |");
        foreach (var (name, (count, ns)) in _totals.OrderByDescending(t => t.Value.Nanoseconds))
            Console.Error.WriteLine($"| {name} | {count} | {ns / 1e6:F2} | {ns / 1e3 / count:F1} | {100 * ns / Math.Max(total, 1):F1}% |");
        _context.Vk.DestroyQueryPool(_context.Device, _pool, null);
    }
}
