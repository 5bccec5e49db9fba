using Silk.NET.Core.Native;
using Silk.NET.Vulkan;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// Queries a physical device's optional features (Vulkan 1.1/1.2/1.3 feature structs, subgroup properties, the
/// integer dot product and cooperative matrix extensions) and creates the logical device with exactly those of
/// them that exist and are wanted: feature structs chained in <c>DeviceCreateInfo.pNext</c> with only supported
/// bits set, extensions enabled only when the device lists them.
/// </summary>
internal sealed unsafe class DeviceFeatureProbe
{
    public const string IntegerDotProductExtension = "VK_KHR_shader_integer_dot_product";
    public const string CooperativeMatrixExtension = "VK_KHR_cooperative_matrix";
    public const string CooperativeMatrix2Extension = "VK_NV_cooperative_matrix2";

    private static readonly uint Version11 = Vk.Version11;
    private static readonly uint Version12 = Vk.Version12;
    private static readonly uint Version13 = Vk.Version13;

    private readonly PhysicalDeviceCooperativeMatrix2FeaturesNV _cooperativeMatrix2;

    /// <summary>The Vulkan version the device is used at: the lower of the instance's and the device's (major.minor).</summary>
    public uint ApiVersion { get; }

    /// <summary>The device extensions <c>vkEnumerateDeviceExtensionProperties</c> lists.</summary>
    public IReadOnlySet<string> Extensions { get; }

    /// <summary>Everything the device has, before any is disabled.</summary>
    public DeviceFeatures Supported { get; }

    private DeviceFeatureProbe(uint apiVersion, IReadOnlySet<string> extensions, DeviceFeatures supported, PhysicalDeviceCooperativeMatrix2FeaturesNV cooperativeMatrix2)
    {
        ApiVersion = apiVersion;
        Extensions = extensions;
        Supported = supported;
        _cooperativeMatrix2 = cooperativeMatrix2;
    }

    /// <summary>Major and minor of a packed Vulkan version, patch cleared.</summary>
    public static uint MajorMinor(uint version) => version & ~0xFFFu;

    public static DeviceFeatureProbe Query(Vk vk, Instance instance, uint instanceApiVersion, PhysicalDevice device)
    {
        vk.GetPhysicalDeviceProperties(device, out var properties);
        uint api = Math.Min(MajorMinor(instanceApiVersion), MajorMinor(properties.ApiVersion));
        var extensions = DeviceExtensions(vk, device);
        if (api < Version11)
            return new DeviceFeatureProbe(api, extensions, DeviceFeatures.None, default);

        bool v12 = api >= Version12, v13 = api >= Version13;
        bool dotExtension = extensions.Contains(IntegerDotProductExtension);
        bool coopExtension = extensions.Contains(CooperativeMatrixExtension);
        bool coop2Extension = coopExtension && extensions.Contains(CooperativeMatrix2Extension);

        // Features: each struct chained only where the version or an extension makes it valid.
        var v11Features = new PhysicalDeviceVulkan11Features { SType = StructureType.PhysicalDeviceVulkan11Features };
        var v12Features = new PhysicalDeviceVulkan12Features { SType = StructureType.PhysicalDeviceVulkan12Features };
        var v13Features = new PhysicalDeviceVulkan13Features { SType = StructureType.PhysicalDeviceVulkan13Features };
        var dotFeatures = new PhysicalDeviceShaderIntegerDotProductFeatures { SType = StructureType.PhysicalDeviceShaderIntegerDotProductFeatures };
        var coopFeatures = new PhysicalDeviceCooperativeMatrixFeaturesKHR { SType = StructureType.PhysicalDeviceCooperativeMatrixFeaturesKhr };
        var coop2Features = new PhysicalDeviceCooperativeMatrix2FeaturesNV { SType = StructureType.PhysicalDeviceCooperativeMatrix2FeaturesNV };
        void* chain = null;
        if (v12)
        {
            v11Features.PNext = chain; chain = &v11Features;
            v12Features.PNext = chain; chain = &v12Features;
        }
        if (v13)
        {
            v13Features.PNext = chain; chain = &v13Features;
        }
        else if (dotExtension)
        {
            dotFeatures.PNext = chain; chain = &dotFeatures;
        }
        if (coopExtension)
        {
            coopFeatures.PNext = chain; chain = &coopFeatures;
        }
        if (coop2Extension)
        {
            coop2Features.PNext = chain; chain = &coop2Features;
        }
        var features2 = new PhysicalDeviceFeatures2 { SType = StructureType.PhysicalDeviceFeatures2, PNext = chain };
        vk.GetPhysicalDeviceFeatures2(device, &features2);

        // Properties: subgroups, subgroup size control, integer dot product acceleration, cooperative matrix stages.
        var subgroup = new PhysicalDeviceSubgroupProperties { SType = StructureType.PhysicalDeviceSubgroupProperties };
        var sizeControl = new PhysicalDeviceSubgroupSizeControlProperties { SType = StructureType.PhysicalDeviceSubgroupSizeControlProperties };
        var dotProperties = new PhysicalDeviceShaderIntegerDotProductProperties { SType = StructureType.PhysicalDeviceShaderIntegerDotProductProperties };
        var coopProperties = new PhysicalDeviceCooperativeMatrixPropertiesKHR { SType = StructureType.PhysicalDeviceCooperativeMatrixPropertiesKhr };
        chain = &subgroup;
        if (v13)
        {
            sizeControl.PNext = chain; chain = &sizeControl;
        }
        if (v13 || dotExtension)
        {
            dotProperties.PNext = chain; chain = &dotProperties;
        }
        if (coopExtension)
        {
            coopProperties.PNext = chain; chain = &coopProperties;
        }
        var properties2 = new PhysicalDeviceProperties2 { SType = StructureType.PhysicalDeviceProperties2, PNext = chain };
        vk.GetPhysicalDeviceProperties2(device, &properties2);

        bool computeSubgroups = (subgroup.SupportedStages & ShaderStageFlags.ComputeBit) != 0;
        bool sizeControlled = v13 && v13Features.SubgroupSizeControl && v13Features.ComputeFullSubgroups
            && (sizeControl.RequiredSubgroupSizeStages & ShaderStageFlags.ComputeBit) != 0;
        bool dot = v13 ? v13Features.ShaderIntegerDotProduct : dotExtension && dotFeatures.ShaderIntegerDotProduct;
        bool coop = coopExtension && coopFeatures.CooperativeMatrix
            && (coopProperties.CooperativeMatrixSupportedStages & ShaderStageFlags.ComputeBit) != 0;
        bool coop2 = coop && coop2Extension && (coop2Features.CooperativeMatrixWorkgroupScope || coop2Features.CooperativeMatrixFlexibleDimensions
            || coop2Features.CooperativeMatrixReductions || coop2Features.CooperativeMatrixConversions
            || coop2Features.CooperativeMatrixPerElementOperations || coop2Features.CooperativeMatrixTensorAddressing
            || coop2Features.CooperativeMatrixBlockLoads);

        var supported = new DeviceFeatures
        {
            Storage16 = v12 && v11Features.StorageBuffer16BitAccess,
            UniformStorage16 = v12 && v11Features.UniformAndStorageBuffer16BitAccess,
            Storage8 = v12 && v12Features.StorageBuffer8BitAccess,
            UniformStorage8 = v12 && v12Features.UniformAndStorageBuffer8BitAccess,
            Float16 = v12 && v12Features.ShaderFloat16,
            Int8 = v12 && v12Features.ShaderInt8,
            Int16 = features2.Features.ShaderInt16,
            Float64 = features2.Features.ShaderFloat64,
            SubgroupArithmetic = computeSubgroups && (subgroup.SupportedOperations & SubgroupFeatureFlags.ArithmeticBit) != 0,
            SubgroupShuffle = computeSubgroups && (subgroup.SupportedOperations & SubgroupFeatureFlags.ShuffleBit) != 0,
            SubgroupSize = subgroup.SubgroupSize,
            SubgroupSizeControl = sizeControlled,
            MinSubgroupSize = sizeControlled ? sizeControl.MinSubgroupSize : subgroup.SubgroupSize,
            MaxSubgroupSize = sizeControlled ? sizeControl.MaxSubgroupSize : subgroup.SubgroupSize,
            IntegerDotProduct = dot,
            IntegerDotProduct4x8Accelerated = dot && (dotProperties.IntegerDotProduct4x8BitPackedSignedAccelerated
                || dotProperties.IntegerDotProduct4x8BitPackedUnsignedAccelerated),
            CooperativeMatrix = coop,
            CooperativeMatrixShapes = coop ? CooperativeMatrixShapes(vk, instance, device) : [],
            CooperativeMatrix2 = coop2,
        };
        coop2Features.PNext = null;
        return new DeviceFeatureProbe(api, extensions, supported, coop2Features);
    }

    /// <summary>
    /// Creates the logical device with <paramref name="enabled"/> (a subset of <see cref="Supported"/>) switched on,
    /// and the extensions those features need where the device lists them.
    /// </summary>
    public Result CreateDevice(Vk vk, PhysicalDevice physicalDevice, DeviceFeatures enabled, DeviceQueueCreateInfo* queue, out Device device)
    {
        var extensions = new List<string>();
        var features2 = new PhysicalDeviceFeatures2 { SType = StructureType.PhysicalDeviceFeatures2 };
        features2.Features.ShaderInt16 = enabled.Int16;
        features2.Features.ShaderFloat64 = enabled.Float64;
        var v11Features = new PhysicalDeviceVulkan11Features
        {
            SType = StructureType.PhysicalDeviceVulkan11Features,
            StorageBuffer16BitAccess = enabled.Storage16,
            UniformAndStorageBuffer16BitAccess = enabled.UniformStorage16,
        };
        var v12Features = new PhysicalDeviceVulkan12Features
        {
            SType = StructureType.PhysicalDeviceVulkan12Features,
            StorageBuffer8BitAccess = enabled.Storage8,
            UniformAndStorageBuffer8BitAccess = enabled.UniformStorage8,
            ShaderFloat16 = enabled.Float16,
            ShaderInt8 = enabled.Int8,
        };
        var v13Features = new PhysicalDeviceVulkan13Features
        {
            SType = StructureType.PhysicalDeviceVulkan13Features,
            ShaderIntegerDotProduct = enabled.IntegerDotProduct,
            SubgroupSizeControl = enabled.SubgroupSizeControl,
            ComputeFullSubgroups = enabled.SubgroupSizeControl,
        };
        var dotFeatures = new PhysicalDeviceShaderIntegerDotProductFeatures
        {
            SType = StructureType.PhysicalDeviceShaderIntegerDotProductFeatures,
            ShaderIntegerDotProduct = enabled.IntegerDotProduct,
        };
        var coopFeatures = new PhysicalDeviceCooperativeMatrixFeaturesKHR
        {
            SType = StructureType.PhysicalDeviceCooperativeMatrixFeaturesKhr,
            CooperativeMatrix = enabled.CooperativeMatrix,
        };
        var coop2Features = _cooperativeMatrix2;
        coop2Features.SType = StructureType.PhysicalDeviceCooperativeMatrix2FeaturesNV;

        void* chain = null;
        if (ApiVersion >= Version12)
        {
            v11Features.PNext = chain; chain = &v11Features;
            v12Features.PNext = chain; chain = &v12Features;
        }
        if (ApiVersion >= Version13)
        {
            v13Features.PNext = chain; chain = &v13Features;
        }
        else if (enabled.IntegerDotProduct)
        {
            dotFeatures.PNext = chain; chain = &dotFeatures;
        }
        if (enabled.IntegerDotProduct && Extensions.Contains(IntegerDotProductExtension))
            extensions.Add(IntegerDotProductExtension);
        if (enabled.CooperativeMatrix)
        {
            coopFeatures.PNext = chain; chain = &coopFeatures;
            extensions.Add(CooperativeMatrixExtension);
        }
        if (enabled.CooperativeMatrix && enabled.CooperativeMatrix2)
        {
            coop2Features.PNext = chain; chain = &coop2Features;
            extensions.Add(CooperativeMatrix2Extension);
        }
        features2.PNext = chain;

        var names = (byte**)SilkMarshal.StringArrayToPtr(extensions);
        try
        {
            var info = new DeviceCreateInfo
            {
                SType = StructureType.DeviceCreateInfo,
                PNext = &features2,
                QueueCreateInfoCount = 1,
                PQueueCreateInfos = queue,
                EnabledExtensionCount = (uint)extensions.Count,
                PpEnabledExtensionNames = names,
            };
            return vk.CreateDevice(physicalDevice, in info, null, out device);
        }
        finally
        {
            SilkMarshal.Free((nint)names);
        }
    }

    private static HashSet<string> DeviceExtensions(Vk vk, PhysicalDevice device)
    {
        uint count = 0;
        VulkanException.Check(vk.EnumerateDeviceExtensionProperties(device, (byte*)null, ref count, null), "vkEnumerateDeviceExtensionProperties");
        var properties = new ExtensionProperties[count];
        fixed (ExtensionProperties* p = properties)
            VulkanException.Check(vk.EnumerateDeviceExtensionProperties(device, (byte*)null, ref count, p), "vkEnumerateDeviceExtensionProperties");
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
        {
            fixed (byte* name = properties[i].ExtensionName)
                names.Add(SilkMarshal.PtrToString((nint)name) ?? "");
        }
        return names;
    }

    /// <summary>The shapes <c>vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR</c> lists (reached through the instance's function table).</summary>
    private static IReadOnlyList<CooperativeMatrixShape> CooperativeMatrixShapes(Vk vk, Instance instance, PhysicalDevice device)
    {
        var function = (delegate* unmanaged<PhysicalDevice, uint*, CooperativeMatrixPropertiesKHR*, Result>)
            vk.GetInstanceProcAddr(instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR").Handle;
        if (function == null) return [];
        uint count = 0;
        if (function(device, &count, null) != Result.Success || count == 0) return [];
        var properties = new CooperativeMatrixPropertiesKHR[count];
        for (int i = 0; i < count; i++) properties[i].SType = StructureType.CooperativeMatrixPropertiesKhr;
        fixed (CooperativeMatrixPropertiesKHR* p = properties)
        {
            var result = function(device, &count, p);
            if (result != Result.Success && result != Result.Incomplete) return [];
        }
        return properties.Take((int)count).Select(p => new CooperativeMatrixShape(
            p.MSize, p.NSize, p.KSize, ComponentName((int)p.AType), ComponentName((int)p.BType), ComponentName((int)p.CType),
            ComponentName((int)p.ResultType), p.SaturatingAccumulation, ScopeName((int)p.Scope))).ToList();
    }

    /// <summary>VkComponentTypeKHR by value (the names Silk.NET gives these vary between releases).</summary>
    private static string ComponentName(int type) => type switch
    {
        0 => "f16",
        1 => "f32",
        2 => "f64",
        3 => "s8",
        4 => "s16",
        5 => "s32",
        6 => "s64",
        7 => "u8",
        8 => "u16",
        9 => "u32",
        10 => "u64",
        1000141000 => "bf16",
        1000491000 => "s8-packed",
        1000491001 => "u8-packed",
        1000491002 => "e4m3",
        1000491003 => "e5m2",
        _ => $"type{type}",
    };

    /// <summary>VkScopeKHR by value.</summary>
    private static string ScopeName(int scope) => scope switch
    {
        1 => "device",
        2 => "workgroup",
        3 => "subgroup",
        5 => "queue family",
        _ => $"scope{scope}",
    };
}
