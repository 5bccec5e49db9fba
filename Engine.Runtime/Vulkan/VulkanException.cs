using Silk.NET.Vulkan;

namespace Engine.Runtime.Vulkan;

/// <summary>A Vulkan call failed, or no usable device exists.</summary>
public sealed class VulkanException(string message) : Exception(message)
{
    internal static void Check(Result result, string call)
    {
        if (result != Result.Success)
            throw new VulkanException($"{call} failed: {result}");
    }
}
