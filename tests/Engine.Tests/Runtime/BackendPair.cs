using Engine.Runtime;
using Engine.Runtime.Cpu;
using Engine.Runtime.Vulkan;

namespace Engine.Tests.Runtime;

/// <summary>
/// The Vulkan backend (lavapipe where there is no GPU) beside the CPU reference, shared by the tests of a class.
/// A machine without any Vulkan device fails these tests with the reason: CI installs lavapipe.
/// </summary>
public sealed class BackendPair : IDisposable
{
    public CpuBackend Cpu { get; } = new();

    public VulkanBackend Vulkan { get; } = new();

    public void Dispose()
    {
        Vulkan.Dispose();
        Cpu.Dispose();
    }
}
