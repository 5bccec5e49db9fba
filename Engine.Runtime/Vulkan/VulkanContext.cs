using System.Runtime.InteropServices;
using Silk.NET.Core.Native;
using Silk.NET.Vulkan;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// Owns the Vulkan instance, the chosen physical device, the logical device, its compute queue and a command pool.
/// Device choice: the index given (command line, else the ENGINE_DEVICE environment variable), else the first
/// discrete GPU, then integrated, then virtual, then CPU implementations such as Mesa's lavapipe.
/// Validation layers are enabled when ENGINE_VULKAN_VALIDATION=1. Optional features (16- and 8-bit storage and
/// types, subgroup arithmetic, integer dot products, cooperative matrices) are enabled where the device has them,
/// less those ENGINE_VULKAN_DISABLE names; <see cref="Features"/> says which, so kernels can choose their variants.
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

    /// <summary>The optional features enabled on <see cref="Device"/> (the same as <c>Info.Features</c>).</summary>
    public DeviceFeatures Features => Info.Features;

    /// <summary>The Vulkan version the device is used at (major.minor, packed): the lower of the instance's and the device's.</summary>
    public uint ApiVersion { get; }
    public PhysicalDeviceLimits Limits { get; }
    public PhysicalDeviceMemoryProperties MemoryProperties { get; }

    /// <summary>The largest byte range one storage-buffer descriptor may cover.</summary>
    public ulong MaxBindingRange => Math.Min(Limits.MaxStorageBufferRange, 1UL << 31);

    private VulkanContext(Vk vk, Instance instance, uint instanceApiVersion, int? requestedIndex, DeviceFeatureSet disabled)
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
        var probe = DeviceFeatureProbe.Query(vk, instance, instanceApiVersion, PhysicalDevice);
        ApiVersion = probe.ApiVersion;
        Info = Describe(vk, PhysicalDevice, index, probe.Supported.Without(disabled));
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
        VulkanException.Check(probe.CreateDevice(vk, PhysicalDevice, Info.Features, &queueInfo, out var device), "vkCreateDevice");
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

    /// <summary>
    /// Opens a device; <paramref name="deviceIndex"/> null means ENGINE_DEVICE, else the best device. Optional
    /// features are enabled where present, less those ENGINE_VULKAN_DISABLE names.
    /// </summary>
    public static VulkanContext Create(int? deviceIndex = null) =>
        Create(deviceIndex, DeviceFeatures.DisabledFromEnvironment());

    /// <summary>Opens a device with the features in <paramref name="disabled"/> left off (ENGINE_VULKAN_DISABLE is not read).</summary>
    public static VulkanContext Create(int? deviceIndex, DeviceFeatureSet disabled)
    {
        deviceIndex ??= IndexFromEnvironment();
        var vk = LoadApi();
        var (instance, apiVersion) = CreateInstance(vk);
        try
        {
            return new VulkanContext(vk, instance, apiVersion, deviceIndex, disabled);
        }
        catch
        {
            vk.DestroyInstance(instance, null);
            vk.Dispose();
            throw;
        }
    }

    /// <summary>Every device the loader sees, with the features it would get (less ENGINE_VULKAN_DISABLE's); opens none.</summary>
    public static IReadOnlyList<VulkanDeviceInfo> ListDevices(out int defaultIndex) =>
        ListDevices(DeviceFeatures.DisabledFromEnvironment(), out defaultIndex);

    /// <summary>Every device the loader sees, with the features it would get less <paramref name="disabled"/>; opens none.</summary>
    public static IReadOnlyList<VulkanDeviceInfo> ListDevices(DeviceFeatureSet disabled, out int defaultIndex)
    {
        using var vk = LoadApi();
        var (instance, apiVersion) = CreateInstance(vk);
        try
        {
            var devices = PhysicalDevices(vk, instance);
            defaultIndex = devices.Length == 0 ? -1 : IndexFromEnvironment() ?? ChooseDefault(vk, devices);
            return devices.Select((d, i) =>
                Describe(vk, d, i, DeviceFeatureProbe.Query(vk, instance, apiVersion, d).Supported.Without(disabled))).ToList();
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

    /// <summary>
    /// An instance at Vulkan 1.3 where the loader has it (so 1.3 devices get their 1.3 features), else 1.2;
    /// returns the version asked for.
    /// </summary>
    private static (Instance Instance, uint ApiVersion) CreateInstance(Vk vk)
    {
        uint apiVersion = InstanceVersion(vk) >= Vk.Version13 ? Vk.Version13 : Vk.Version12;
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
                ApiVersion = apiVersion,
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
            return (instance, apiVersion);
        }
        finally
        {
            SilkMarshal.Free((nint)appName);
            SilkMarshal.Free((nint)layerNames);
        }
    }

    /// <summary>The loader's instance version (1.0 where vkEnumerateInstanceVersion does not exist).</summary>
    private static uint InstanceVersion(Vk vk)
    {
        try
        {
            uint version = 0;
            return vk.EnumerateInstanceVersion(ref version) == Result.Success ? version : Vk.Version10;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or InvalidOperationException)
        {
            return Vk.Version10;
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

    private static VulkanDeviceInfo Describe(Vk vk, PhysicalDevice device, int index, DeviceFeatures features)
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
        string kind = properties.DeviceType switch
        {
            PhysicalDeviceType.DiscreteGpu => "discrete GPU",
            PhysicalDeviceType.IntegratedGpu => "integrated GPU",
            PhysicalDeviceType.VirtualGpu => "virtual GPU",
            PhysicalDeviceType.Cpu => "CPU",
            _ => "other",
        };
        return new VulkanDeviceInfo(index, name, kind, version, local, properties.Limits.MaxStorageBufferRange, features.SubgroupSize, features);
    }
}
