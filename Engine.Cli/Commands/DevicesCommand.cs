using System.CommandLine;
using Engine.Runtime.Vulkan;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine devices</c>: the Vulkan devices the loader sees, which one runs by default, and the optional features
/// each would get. The first four columns (index, default mark, name, kind) stay put: scripts read them.
/// </summary>
public static class DevicesCommand
{
    public static Command Create()
    {
        var command = new Command("devices",
            "List the Vulkan devices, mark the default one, and name the optional shader features each has "
            + "(fp16 storage16 int8 storage8 int16 fp64 subgroup-arith subgroup-shuffle subgroup-size-MIN-MAX dot coopmat coopmat2). "
            + $"{DeviceFeatures.DisableEnvironmentVariable}=fp16,int8,subgroup,dot,coopmat (also int16, fp64, coopmat2, all) "
            + "makes the engine treat those features as absent, to test the fallback kernels");
        command.SetAction(_ =>
        {
            var devices = VulkanContext.ListDevices(out int chosen);
            if (devices.Count == 0)
            {
                Console.Error.WriteLine("engine: no Vulkan device found (install mesa-vulkan-drivers for a CPU device, or use --backend cpu)");
                return 1;
            }
            Console.WriteLine("| index | default | name | kind | Vulkan | device-local MiB | max binding MiB | subgroup | features |");
            Console.WriteLine("| ---: | :---: | --- | --- | --- | ---: | ---: | ---: | --- |");
            foreach (var d in devices)
            {
                Console.WriteLine($"| {d.Index} | {(d.Index == chosen ? "*" : "")} | {d.Name} | {d.Kind} | {d.ApiVersion} | {d.DeviceLocalBytes >> 20} | {d.MaxStorageBufferRange >> 20} | {d.SubgroupSize} | {d.Features} |");
            }
            var shapes = devices.SelectMany(d => d.Features.CooperativeMatrixShapes.Select(s => (d.Index, Shape: s))).ToList();
            if (shapes.Count > 0)
            {
                Console.WriteLine();
                Console.WriteLine("| device | cooperative matrix (MxNxK A,B,C->result) |");
                Console.WriteLine("| ---: | --- |");
                foreach (var (index, shape) in shapes)
                    Console.WriteLine($"| {index} | {shape} |");
            }
            return 0;
        });
        return command;
    }
}
