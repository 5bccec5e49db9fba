namespace Engine.Runtime.Vulkan;

/// <summary>A physical device as the Vulkan loader reports it.</summary>
public sealed record VulkanDeviceInfo(
    int Index,
    string Name,
    string Kind,
    string ApiVersion,
    long DeviceLocalBytes,
    ulong MaxStorageBufferRange,
    uint SubgroupSize)
{
    /// <summary>A CPU implementation of Vulkan, such as Mesa's lavapipe.</summary>
    public bool IsCpu => Kind == "CPU";
}
