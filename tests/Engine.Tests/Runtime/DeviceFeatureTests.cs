using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;
using Engine.Runtime.Vulkan;
using Silk.NET.Vulkan;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>
/// Optional device features: what VulkanContext reports against an independent query of the same device, the
/// features Mesa's lavapipe is known to have, ENGINE_VULKAN_DISABLE, and device creation (under the validation
/// layer where it is installed).
/// </summary>
public sealed partial class DeviceFeatureTests
{
    [Fact]
    public void Reported_features_match_an_independent_query_of_the_device()
    {
        using var context = VulkanContext.Create(null, DeviceFeatureSet.None);
        var f = context.Features;
        var vk = context.Vk;
        var device = context.PhysicalDevice;
        Assert.Same(f, context.Info.Features);
        Assert.Equal(DeviceFeatureSet.None, f.Disabled);

        // Silk.NET's managed chains, filled through the pointer overloads (the 'out' overloads reset pNext).
        Assert.True(context.ApiVersion >= Vk.Version12, "the engine needs a Vulkan 1.2 device");
        bool v13 = context.ApiVersion >= Vk.Version13;
        using var features = Chain.Create<PhysicalDeviceFeatures2, PhysicalDeviceVulkan11Features, PhysicalDeviceVulkan12Features>();
        using var properties = Chain.Create<PhysicalDeviceProperties2, PhysicalDeviceSubgroupProperties>();
        Call(vk, nameof(Vk.GetPhysicalDeviceFeatures2), device, (nint)features);
        Call(vk, nameof(Vk.GetPhysicalDeviceProperties2), device, (nint)properties);
        var v11 = features.Item1;
        var v12 = features.Item2;
        var subgroup = properties.Item1;

        Assert.Equal((bool)v11.StorageBuffer16BitAccess, f.Storage16);
        Assert.Equal((bool)v11.UniformAndStorageBuffer16BitAccess, f.UniformStorage16);
        Assert.Equal((bool)v12.StorageBuffer8BitAccess, f.Storage8);
        Assert.Equal((bool)v12.UniformAndStorageBuffer8BitAccess, f.UniformStorage8);
        Assert.Equal((bool)v12.ShaderFloat16, f.Float16);
        Assert.Equal((bool)v12.ShaderInt8, f.Int8);
        Assert.Equal((bool)features.Head.Features.ShaderInt16, f.Int16);
        Assert.Equal((bool)features.Head.Features.ShaderFloat64, f.Float64);
        bool compute = (subgroup.SupportedStages & ShaderStageFlags.ComputeBit) != 0;
        Assert.Equal(compute && (subgroup.SupportedOperations & SubgroupFeatureFlags.ArithmeticBit) != 0, f.SubgroupArithmetic);
        Assert.Equal(compute && (subgroup.SupportedOperations & SubgroupFeatureFlags.ShuffleBit) != 0, f.SubgroupShuffle);
        Assert.Equal(subgroup.SubgroupSize, f.SubgroupSize);
        Assert.Equal(subgroup.SubgroupSize, context.Info.SubgroupSize);
        Assert.InRange(f.SubgroupSize, f.MinSubgroupSize, f.MaxSubgroupSize);
        if (v13)
        {
            using var features13 = Chain.Create<PhysicalDeviceFeatures2, PhysicalDeviceVulkan13Features>();
            using var sizes = Chain.Create<PhysicalDeviceProperties2, PhysicalDeviceSubgroupSizeControlProperties>();
            Call(vk, nameof(Vk.GetPhysicalDeviceFeatures2), device, (nint)features13);
            Call(vk, nameof(Vk.GetPhysicalDeviceProperties2), device, (nint)sizes);
            var v13Features = features13.Item1;
            Assert.Equal((bool)v13Features.ShaderIntegerDotProduct, f.IntegerDotProduct);
            bool sizeControl = v13Features.SubgroupSizeControl && v13Features.ComputeFullSubgroups
                && (sizes.Item1.RequiredSubgroupSizeStages & ShaderStageFlags.ComputeBit) != 0;
            Assert.Equal(sizeControl, f.SubgroupSizeControl);
            if (sizeControl)
                Assert.Equal((sizes.Item1.MinSubgroupSize, sizes.Item1.MaxSubgroupSize), (f.MinSubgroupSize, f.MaxSubgroupSize));
        }
        else
        {
            Assert.Equal(vk.IsDeviceExtensionPresent(device, DeviceFeatureProbe.IntegerDotProductExtension) && f.IntegerDotProduct, f.IntegerDotProduct);
        }
        // Extension features exist only with their extensions.
        if (!vk.IsDeviceExtensionPresent(device, DeviceFeatureProbe.CooperativeMatrixExtension))
            Assert.False(f.CooperativeMatrix);
        if (!vk.IsDeviceExtensionPresent(device, DeviceFeatureProbe.CooperativeMatrix2Extension))
            Assert.False(f.CooperativeMatrix2);
        Assert.True(f.CooperativeMatrix || f.CooperativeMatrixShapes.Count == 0);
    }

    [Fact]
    public void Lavapipe_reports_what_mesa_22_and_later_have()
    {
        using var context = VulkanContext.Create(null, DeviceFeatureSet.None);
        var match = LlvmpipeName().Match(context.Info.Name);
        if (!match.Success)
            return;  // another device: the independent query above covers it
        var f = context.Features;
        Assert.True(f.Float16 && f.Storage16 && f.UniformStorage16, f.ToString());
        Assert.True(f.Int8 && f.Storage8 && f.UniformStorage8, f.ToString());
        Assert.True(f.Int16 && f.Float64, f.ToString());
        Assert.True(f.SubgroupArithmetic && f.SubgroupShuffle, f.ToString());
        // llvmpipe's subgroup is one SIMD register of 32-bit lanes: "256 bits" gives 8.
        Assert.Equal(uint.Parse(match.Groups[1].Value) / 32, f.SubgroupSize);
        if (DeviceFeatureProbe.MajorMinor(ParseVersion(context.Info.ApiVersion)) >= Vk.Version13)
        {
            Assert.Equal((uint)Vk.Version13, context.ApiVersion);  // the instance was raised to 1.3 for it
            Assert.True(f.IntegerDotProduct, f.ToString());
        }
        Assert.Equal(["fp16", "storage16", "int8", "storage8", "int16", "fp64", "subgroup-arith", "subgroup-shuffle"], f.Words().Take(8));
    }

    [Theory]
    [InlineData("fp16")]
    [InlineData("int8")]
    [InlineData("subgroup")]
    [InlineData("dot")]
    [InlineData("coopmat")]
    [InlineData("fp16,int8,subgroup,dot,coopmat")]
    [InlineData("all")]
    public void Disabled_features_are_absent_and_the_device_still_opens(string names)
    {
        var disabled = DeviceFeatures.ParseDisabled(names);
        using var full = VulkanContext.Create(null, DeviceFeatureSet.None);
        using var context = VulkanContext.Create(null, disabled);
        var f = context.Features;
        Assert.Equal(disabled, f.Disabled);
        Assert.Equal(full.Features.Without(disabled) with { CooperativeMatrixShapes = f.CooperativeMatrixShapes },
            f with { CooperativeMatrixShapes = f.CooperativeMatrixShapes });
        bool off(DeviceFeatureSet s) => (disabled & s) != 0;
        if (off(DeviceFeatureSet.Float16)) Assert.False(f.Float16 || f.Storage16 || f.UniformStorage16);
        if (off(DeviceFeatureSet.Int8)) Assert.False(f.Int8 || f.Storage8 || f.UniformStorage8);
        if (off(DeviceFeatureSet.Subgroup)) Assert.False(f.SubgroupArithmetic || f.SubgroupShuffle || f.SubgroupSizeControl);
        if (off(DeviceFeatureSet.IntegerDotProduct)) Assert.False(f.IntegerDotProduct || f.IntegerDotProduct4x8Accelerated);
        if (off(DeviceFeatureSet.CooperativeMatrix)) Assert.False(f.CooperativeMatrix || f.CooperativeMatrix2 || f.CooperativeMatrixShapes.Count > 0);
        // What was not disabled stays.
        if (!off(DeviceFeatureSet.Int16)) Assert.Equal(full.Features.Int16, f.Int16);
        if (!off(DeviceFeatureSet.Float16)) Assert.Equal(full.Features.Float16, f.Float16);
        Assert.Equal(full.Features.SubgroupSize, f.SubgroupSize);  // a property, not a feature
        Assert.Contains($"(disabled: {DeviceFeatures.NamesOf(disabled)})", f.ToString());
    }

    [Fact]
    public void Device_creation_enables_every_feature_the_device_has()
    {
        using var context = VulkanContext.Create(null, DeviceFeatureSet.None);
        var listed = VulkanContext.ListDevices(DeviceFeatureSet.None, out _)[context.Info.Index];
        Assert.Equal(listed.Features with { CooperativeMatrixShapes = [] }, context.Features with { CooperativeMatrixShapes = [] });
        Assert.Equal(listed.Features.CooperativeMatrixShapes, context.Features.CooperativeMatrixShapes);
        Assert.NotEqual(default, context.Device.Handle);
    }

    [Theory]
    [InlineData("fp16,INT8", DeviceFeatureSet.Float16 | DeviceFeatureSet.Storage16 | DeviceFeatureSet.Int8 | DeviceFeatureSet.Storage8)]
    [InlineData(" dot , coopmat2 ", DeviceFeatureSet.IntegerDotProduct | DeviceFeatureSet.CooperativeMatrix2)]
    [InlineData("coopmat", DeviceFeatureSet.CooperativeMatrix | DeviceFeatureSet.CooperativeMatrix2)]
    [InlineData("", DeviceFeatureSet.None)]
    [InlineData(null, DeviceFeatureSet.None)]
    [InlineData("all", DeviceFeatureSet.All)]
    public void Disable_lists_parse(string? text, DeviceFeatureSet expected) =>
        Assert.Equal(expected, DeviceFeatures.ParseDisabled(text));

    [Fact]
    public void An_unknown_disable_name_fails_naming_the_known_ones()
    {
        var error = Assert.Throws<VulkanException>(() => DeviceFeatures.ParseDisabled("fp16,fp8"));
        Assert.Contains("ENGINE_VULKAN_DISABLE: unknown feature 'fp8' (known: fp16, int8, int16, fp64, subgroup, dot, coopmat, coopmat2, all)", error.Message);
    }

    [Fact]
    public void Devices_command_lists_features_and_keeps_its_first_columns()
    {
        var plain = Engine(new(), "devices");
        Assert.True(plain.ExitCode == 0, plain.Error);
        var lines = plain.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("| index | default | name | kind | Vulkan |", lines[0]);
        Assert.EndsWith("| features |", lines[0]);
        // What ../shared/peer/compare.sh reads: the default device's name in column 4.
        var chosen = lines.Select(l => l.Split('|')).Where(c => c.Length > 4 && c[2].Contains('*')).ToList();
        Assert.Single(chosen);
        using var context = VulkanContext.Create(null, DeviceFeatureSet.None);
        Assert.Equal(context.Info.Name, chosen[0][3].Trim());
        Assert.Equal(context.Features.ToString(), chosen[0][^2].Trim());

        var disabled = Engine(new() { ["ENGINE_VULKAN_DISABLE"] = "fp16,int8,subgroup,dot,coopmat" }, "devices");
        Assert.True(disabled.ExitCode == 0, disabled.Error);
        string row = disabled.Output.Split('\n').Single(l => l.Split('|') is { Length: > 4 } c && c[2].Contains('*'));
        Assert.DoesNotContain("fp16", row.Split('(')[0]);
        Assert.DoesNotContain("subgroup-arith", row);
        Assert.Contains("(disabled: fp16,int8,coopmat,subgroup,dot)", row);

        var wrong = Engine(new() { ["ENGINE_VULKAN_DISABLE"] = "fp17" }, "devices");
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("engine: ENGINE_VULKAN_DISABLE: unknown feature 'fp17'", wrong.Error);

        var help = Engine(new(), "devices", "--help");
        Assert.Contains("ENGINE_VULKAN_DISABLE=fp16,int8,subgroup,dot,coopmat", help.Output);
    }

    [Theory]
    [InlineData("")]
    [InlineData("all")]
    public void A_model_runs_under_the_validation_layer_without_errors(string disable)
    {
        string model = Path.Combine(RepositoryRoot(), "assets", "models", "tinyprose-14m.epack");
        var result = Engine(new() { ["ENGINE_VULKAN_VALIDATION"] = "1", ["ENGINE_VULKAN_DISABLE"] = disable },
            "generate", "-m", model, "-p", "Once upon a time", "-n", "4", "--seed", "1");
        if (result.Error.Contains("VK_LAYER_KHRONOS_validation, which is not installed"))
        {
            // No validation layer here (apt-get install vulkan-validationlayers): the model must still run.
            result = Engine(new() { ["ENGINE_VULKAN_DISABLE"] = disable }, "generate", "-m", model, "-p", "Once upon a time", "-n", "4", "--seed", "1");
        }
        Assert.True(result.ExitCode == 0, result.Error);
        // The layer writes its messages to standard output.
        Assert.DoesNotContain("Validation Error", result.Output);
        Assert.DoesNotContain("VUID-", result.Output);
        Assert.Contains("generated: 4 tokens", result.Error);
    }

    [GeneratedRegex(@"^llvmpipe .*?(\d+) bits\)")]
    private static partial Regex LlvmpipeName();

    private static uint ParseVersion(string text)
    {
        var parts = text.Split('.').Select(uint.Parse).ToArray();
        return (parts[0] << 22) | (parts[1] << 12) | parts[2];
    }

    /// <summary>Calls the pointer overload of a Silk.NET function (reflection passes an IntPtr as the pointer).</summary>
    private static void Call(Vk vk, string name, PhysicalDevice device, nint chain)
    {
        var method = typeof(Vk).GetMethods(BindingFlags.Public | BindingFlags.Instance)
            .Single(m => m.Name == name && m.GetParameters() is { Length: 2 } p && p[1].ParameterType.IsPointer);
        method.Invoke(vk, [device, chain]);
    }

    private sealed record Result(int ExitCode, string Output, string Error);

    /// <summary>Runs the built engine with extra environment variables (the in-process environment is shared by parallel tests).</summary>
    private static Result Engine(Dictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "engine.dll"));
        foreach (string arg in args) start.ArgumentList.Add(arg);
        foreach (var (key, value) in environment) start.Environment[key] = value;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.StandardInput.Close();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"engine {string.Join(' ', args)} did not finish in 5 minutes");
        }
        return new Result(process.ExitCode, output.Result, error.Result);
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Engine.sln")))
                return directory.FullName;
        }
        throw new InvalidOperationException($"no directory above {AppContext.BaseDirectory} holds Engine.sln");
    }
}
