namespace Engine.Runtime.Vulkan;

/// <summary>A physical device as the Vulkan loader reports it, with the optional features it gets (<see cref="DeviceFeatures"/>).</summary>
public sealed record VulkanDeviceInfo(
    int Index,
    string Name,
    string Kind,
    string ApiVersion,
    long DeviceLocalBytes,
    ulong MaxStorageBufferRange,
    uint SubgroupSize,
    DeviceFeatures Features)
{
    /// <summary>A CPU implementation of Vulkan, such as Mesa's lavapipe.</summary>
    public bool IsCpu => Kind == "CPU";
}
