using System.CommandLine;
using Engine.Runtime.Vulkan;

namespace Engine.Cli.Commands;

/// <summary><c>engine devices</c>: the Vulkan devices the loader sees, and which one runs by default.</summary>
public static class DevicesCommand
{
    public static Command Create()
    {
        var command = new Command("devices", "List the Vulkan devices and mark the default one");
        command.SetAction(_ =>
        {
            var devices = VulkanContext.ListDevices(out int chosen);
            if (devices.Count == 0)
            {
                Console.Error.WriteLine("engine: no Vulkan device found (install mesa-vulkan-drivers for a CPU device, or use --backend cpu)");
                return 1;
            }
            Console.WriteLine("| index | default | name | kind | Vulkan | device-local MiB | max binding MiB | subgroup |");
            Console.WriteLine("| ---: | :---: | --- | --- | --- | ---: | ---: | ---: |");
            foreach (var d in devices)
            {
                Console.WriteLine($"| {d.Index} | {(d.Index == chosen ? "*" : "")} | {d.Name} | {d.Kind} | {d.ApiVersion} | {d.DeviceLocalBytes >> 20} | {d.MaxStorageBufferRange >> 20} | {d.SubgroupSize} |");
            }
            return 0;
        });
        return command;
    }
}
