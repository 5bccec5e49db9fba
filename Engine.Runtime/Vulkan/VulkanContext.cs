using System.Runtime.InteropServices;
using Silk.NET.Core.Native;
using Silk.NET.Vulkan;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// Owns the Vulkan instance, the chosen physical device, the logical device, its compute queue and a command pool.
/// Device choice: the index given (command line, else the ENGINE_DEVICE environment variable), else the first
/// discrete GPU, then integrated, then virtual, then CPU implementations such as Mesa's lavapipe.
/// Validation layers are enabled when ENGINE_VULKAN_VALIDATION=1.
/// </summary>
public sealed unsafe class VulkanContext : IDisposable
{
    public const string DeviceEnvironmentVariable = "ENGINE_DEVICE";
    public const string ValidationEnvironmentVariable = "ENGINE_VULKAN_VALIDATION";

    private bool _disposed;

    public Vk Vk { get; }
    public Instance Instance { get; }
    public PhysicalDevice PhysicalDevice { get; }
    public Device Device { get; }
    public Queue Queue { get; }
    public uint QueueFamily { get; }
    public CommandPool CommandPool { get; }
    public VulkanDeviceInfo Info { get; }
    public PhysicalDeviceLimits Limits { get; }
    public PhysicalDeviceMemoryProperties MemoryProperties { get; }

    /// <summary>The largest byte range one storage-buffer descriptor may cover.</summary>
    public ulong MaxBindingRange => Math.Min(Limits.MaxStorageBufferRange, 1UL << 31);

    private VulkanContext(Vk vk, Instance instance, int? requestedIndex)
    {
        Vk = vk;
        Instance = instance;
        var devices = PhysicalDevices(vk, instance);
        if (devices.Length == 0)
            throw new VulkanException("no Vulkan device found (on a machine without a GPU install Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1)");
        int index = requestedIndex ?? ChooseDefault(vk, devices);
        if (index < 0 || index >= devices.Length)
            throw new VulkanException($"device {index} does not exist: {devices.Length} Vulkan device(s) found (see 'engine devices')");
        PhysicalDevice = devices[index];
        Info = Describe(vk, PhysicalDevice, index);
        vk.GetPhysicalDeviceProperties(PhysicalDevice, out var properties);
        Limits = properties.Limits;
        vk.GetPhysicalDeviceMemoryProperties(PhysicalDevice, out var memory);
        MemoryProperties = memory;
        QueueFamily = FindComputeQueueFamily(vk, PhysicalDevice);

        float priority = 1f;
        var queueInfo = new DeviceQueueCreateInfo
        {
            SType = StructureType.DeviceQueueCreateInfo,
            QueueFamilyIndex = QueueFamily,
            QueueCount = 1,
            PQueuePriorities = &priority,
        };
        var deviceInfo = new DeviceCreateInfo
        {
            SType = StructureType.DeviceCreateInfo,
            QueueCreateInfoCount = 1,
            PQueueCreateInfos = &queueInfo,
        };
        VulkanException.Check(vk.CreateDevice(PhysicalDevice, in deviceInfo, null, out var device), "vkCreateDevice");
        Device = device;
        vk.GetDeviceQueue(Device, QueueFamily, 0, out var queue);
        Queue = queue;
        var poolInfo = new CommandPoolCreateInfo
        {
            SType = StructureType.CommandPoolCreateInfo,
            QueueFamilyIndex = QueueFamily,
            Flags = CommandPoolCreateFlags.ResetCommandBufferBit,
        };
        VulkanException.Check(vk.CreateCommandPool(Device, in poolInfo, null, out var pool), "vkCreateCommandPool");
        CommandPool = pool;
    }

    /// <summary>Opens a device; <paramref name="deviceIndex"/> null means ENGINE_DEVICE, else the best device.</summary>
    public static VulkanContext Create(int? deviceIndex = null)
    {
        deviceIndex ??= IndexFromEnvironment();
        var vk = LoadApi();
        var instance = CreateInstance(vk);
        try
        {
            return new VulkanContext(vk, instance, deviceIndex);
        }
        catch
        {
            vk.DestroyInstance(instance, null);
            vk.Dispose();
            throw;
        }
    }

    /// <summary>Every device the loader sees, marking none as chosen.</summary>
    public static IReadOnlyList<VulkanDeviceInfo> ListDevices(out int defaultIndex)
    {
        using var vk = LoadApi();
        var instance = CreateInstance(vk);
        try
        {
            var devices = PhysicalDevices(vk, instance);
            defaultIndex = devices.Length == 0 ? -1 : IndexFromEnvironment() ?? ChooseDefault(vk, devices);
            return devices.Select((d, i) => Describe(vk, d, i)).ToList();
        }
        finally
        {
            vk.DestroyInstance(instance, null);
        }
    }

    /// <summary>Index of the first memory type allowed by <paramref name="typeBits"/> that has all <paramref name="flags"/>.</summary>
    public uint? FindMemoryType(uint typeBits, MemoryPropertyFlags flags)
    {
        for (uint i = 0; i < MemoryProperties.MemoryTypeCount; i++)
        {
            if ((typeBits & (1u << (int)i)) != 0 && (MemoryProperties.MemoryTypes[(int)i].PropertyFlags & flags) == flags)
                return i;
        }
        return null;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Vk.DeviceWaitIdle(Device);
        Vk.DestroyCommandPool(Device, CommandPool, null);
        Vk.DestroyDevice(Device, null);
        Vk.DestroyInstance(Instance, null);
        Vk.Dispose();
    }

    private static int? IndexFromEnvironment()
    {
        string? text = Environment.GetEnvironmentVariable(DeviceEnvironmentVariable);
        if (string.IsNullOrWhiteSpace(text)) return null;
        return int.TryParse(text, out int index) && index >= 0
            ? index
            : throw new VulkanException($"{DeviceEnvironmentVariable}='{text}' is not a device index (see 'engine devices')");
    }

    private static Vk LoadApi()
    {
        try
        {
            return Vk.GetApi();
        }
        catch (Exception e) when (e is DllNotFoundException or FileNotFoundException or InvalidOperationException or PlatformNotSupportedException)
        {
            throw new VulkanException("the Vulkan loader (libvulkan.so.1) was not found: install it (apt-get install libvulkan1 mesa-vulkan-drivers) or use --backend cpu");
        }
    }

    private static Instance CreateInstance(Vk vk)
    {
        var appName = (byte*)SilkMarshal.StringToPtr("engine");
        string[] layers = Environment.GetEnvironmentVariable(ValidationEnvironmentVariable) == "1"
            ? ["VK_LAYER_KHRONOS_validation"]
            : [];
        var layerNames = (byte**)SilkMarshal.StringArrayToPtr(layers);
        try
        {
            var app = new ApplicationInfo
            {
                SType = StructureType.ApplicationInfo,
                PApplicationName = appName,
                PEngineName = appName,
                ApiVersion = Vk.Version12,
            };
            var info = new InstanceCreateInfo
            {
                SType = StructureType.InstanceCreateInfo,
                PApplicationInfo = &app,
                EnabledLayerCount = (uint)layers.Length,
                PpEnabledLayerNames = layerNames,
            };
            var result = vk.CreateInstance(in info, null, out var instance);
            if (result == Result.ErrorLayerNotPresent)
                throw new VulkanException($"{ValidationEnvironmentVariable}=1 asks for VK_LAYER_KHRONOS_validation, which is not installed (apt-get install vulkan-validationlayers)");
            if (result == Result.ErrorIncompatibleDriver)
                throw new VulkanException("no Vulkan driver found (on a machine without a GPU install Mesa's lavapipe: apt-get install mesa-vulkan-drivers)");
            VulkanException.Check(result, "vkCreateInstance");
            return instance;
        }
        finally
        {
            SilkMarshal.Free((nint)appName);
            SilkMarshal.Free((nint)layerNames);
        }
    }

    private static PhysicalDevice[] PhysicalDevices(Vk vk, Instance instance)
    {
        uint count = 0;
        VulkanException.Check(vk.EnumeratePhysicalDevices(instance, ref count, null), "vkEnumeratePhysicalDevices");
        var devices = new PhysicalDevice[count];
        fixed (PhysicalDevice* p = devices)
            VulkanException.Check(vk.EnumeratePhysicalDevices(instance, ref count, p), "vkEnumeratePhysicalDevices");
        return devices;
    }

    private static int ChooseDefault(Vk vk, PhysicalDevice[] devices)
    {
        PhysicalDeviceType[] preference =
            [PhysicalDeviceType.DiscreteGpu, PhysicalDeviceType.IntegratedGpu, PhysicalDeviceType.VirtualGpu, PhysicalDeviceType.Cpu];
        foreach (var type in preference)
        {
            for (int i = 0; i < devices.Length; i++)
            {
                vk.GetPhysicalDeviceProperties(devices[i], out var properties);
                if (properties.DeviceType == type) return i;
            }
        }
        return 0;
    }

    private static uint FindComputeQueueFamily(Vk vk, PhysicalDevice device)
    {
        uint count = 0;
        vk.GetPhysicalDeviceQueueFamilyProperties(device, ref count, null);
        var families = new QueueFamilyProperties[count];
        fixed (QueueFamilyProperties* p = families)
            vk.GetPhysicalDeviceQueueFamilyProperties(device, ref count, p);
        for (uint i = 0; i < count; i++)
        {
            if ((families[i].QueueFlags & QueueFlags.ComputeBit) != 0)
                return i;
        }
        throw new VulkanException("the selected Vulkan device has no compute queue");
    }

    private static VulkanDeviceInfo Describe(Vk vk, PhysicalDevice device, int index)
    {
        vk.GetPhysicalDeviceProperties(device, out var properties);
        string name = Marshal.PtrToStringUTF8((nint)properties.DeviceName) ?? "unknown";
        uint api = properties.ApiVersion;
        string version = $"{api >> 22}.{(api >> 12) & 0x3FF}.{api & 0xFFF}";
        vk.GetPhysicalDeviceMemoryProperties(device, out var memory);
        long local = 0;
        for (int h = 0; h < memory.MemoryHeapCount; h++)
        {
            if ((memory.MemoryHeaps[h].Flags & MemoryHeapFlags.DeviceLocalBit) != 0)
                local = Math.Max(local, (long)memory.MemoryHeaps[h].Size);
        }
        var subgroup = new PhysicalDeviceSubgroupProperties { SType = StructureType.PhysicalDeviceSubgroupProperties };
        var properties2 = new PhysicalDeviceProperties2 { SType = StructureType.PhysicalDeviceProperties2, PNext = &subgroup };
        vk.GetPhysicalDeviceProperties2(device, &properties2);
        string kind = properties.DeviceType switch
        {
            PhysicalDeviceType.DiscreteGpu => "discrete GPU",
            PhysicalDeviceType.IntegratedGpu => "integrated GPU",
            PhysicalDeviceType.VirtualGpu => "virtual GPU",
            PhysicalDeviceType.Cpu => "CPU",
            _ => "other",
        };
        return new VulkanDeviceInfo(index, name, kind, version, local, properties.Limits.MaxStorageBufferRange, subgroup.SubgroupSize);
    }
}
