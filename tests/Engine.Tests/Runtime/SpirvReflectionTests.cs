using System.Buffers.Binary;
using Engine.Runtime.Vulkan;
using Engine.Shaders;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>The SPIR-V reader on modules compiled from small GLSL sources whose std430 layout is known by hand.</summary>
public sealed class SpirvReflectionTests
{
    private const string Layouts = """
        #version 450
        layout(local_size_x = 1) in;
        struct Pair { uint a; float b; };
        layout(std430, binding = 0) buffer Out { float o[]; };
        layout(push_constant) uniform Push
        {
            uint count;       // 0
            float scale;      // 4
            vec3 direction;   // 16: a vec3 aligns to 16
            int tail;         // 28: packs after the vec3
            uint words[3];    // 32, stride 4
            uvec2 pair;       // 48: aligns to 8
            Pair nested;      // 56: 8 bytes
            mat2 rotation;    // 64: std430 column stride 8
        } p;
        void main()
        {
            o[0] = float(p.count) + p.scale + p.direction.x + float(p.tail) + float(p.words[2]) + float(p.pair.y)
                + float(p.nested.a) + p.nested.b + p.rotation[1][1];
        }
        """;

    [Fact]
    public void Offsets_sizes_and_names_follow_std430()
    {
        var module = ShaderDebugBuild.CompileText(Layouts);
        Assert.True(module.HasDebugNames);
        var block = module.PushConstants!;
        Assert.True(block.IsBlock);
        Assert.Equal(("Push", "p"), (block.TypeName, block.VariableName));
        Assert.Equal(
            [("count", 0u, 4u), ("scale", 4u, 4u), ("direction", 16u, 12u), ("tail", 28u, 4u), ("words", 32u, 12u),
             ("pair", 48u, 8u), ("nested", 56u, 8u), ("rotation", 64u, 16u)],
            block.Members.Select(m => (m.Name!, m.Offset, m.Size)));
        Assert.Equal(80u, block.Size);
        Assert.Equal(["u32", "f32", "f32x3", "i32", "u32[3]", "u32x2", "struct Pair (2 members)", "mat2x2 f32"],
            block.Members.Select(m => m.Type.ToString()));
        var nested = block.Members[6].Type.Members;
        Assert.Equal([("a", 0u), ("b", 4u)], nested.Select(m => (m.Name!, m.Offset)));
        Assert.Equal((3u, 4u), (block.Members[4].Type.Length, block.Members[4].Type.Stride));
    }

    [Fact]
    public void Optimized_modules_keep_the_layout_and_lose_the_names()
    {
        var named = ShaderDebugBuild.CompileText(Layouts).PushConstants!;
        var optimized = ShaderDebugBuild.CompileText(Layouts, "-O");
        Assert.False(optimized.HasDebugNames);
        Assert.Equal(named.Members.Select(m => (m.Offset, m.Size)), optimized.PushConstants!.Members.Select(m => (m.Offset, m.Size)));
        Assert.All(optimized.PushConstants.Members, m => Assert.Null(m.Name));
    }

    [Fact]
    public void A_module_without_push_constants_has_no_block()
    {
        var module = ShaderDebugBuild.CompileText("""
            #version 450
            layout(local_size_x = 1) in;
            layout(std430, binding = 0) buffer Out { float o[]; };
            void main() { o[0] = 1.0; }
            """);
        Assert.Null(module.PushConstants);
        Assert.Equal(DeviceFeatureSet.None, module.RequiredFeatures);
        Assert.Contains("Shader", module.Capabilities);
    }

    [Fact]
    public void Capabilities_name_the_device_features_a_shader_needs()
    {
        var module = ShaderDebugBuild.CompileText("""
            #version 450
            #extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
            #extension GL_EXT_shader_16bit_storage : require
            #extension GL_KHR_shader_subgroup_arithmetic : require
            layout(local_size_x = 32) in;
            layout(std430, binding = 0) buffer In { float16_t x[]; };
            layout(std430, binding = 1) buffer Out { float o[]; };
            void main() { o[gl_LocalInvocationID.x] = subgroupAdd(float(x[gl_LocalInvocationID.x] * float16_t(2.0))); }
            """);
        Assert.Contains("Float16", module.Capabilities);
        Assert.Contains("StorageBuffer16BitAccess", module.Capabilities);
        Assert.Contains("GroupNonUniformArithmetic", module.Capabilities);
        Assert.Equal(DeviceFeatureSet.Float16 | DeviceFeatureSet.Storage16 | DeviceFeatureSet.Subgroup, module.RequiredFeatures);
    }

    [Fact]
    public void Every_embedded_variant_parses()
    {
        foreach (string variant in ShaderLibrary.Variants)
        {
            var module = SpirvModule.Parse(ShaderLibrary.Get(variant));
            Assert.True(module.Version >= new Version(1, 0), variant);
            Assert.Contains("Shader", module.Capabilities);
        }
    }

    [Fact]
    public void Byte_swapped_modules_read_the_same()
    {
        byte[] code = ShaderLibrary.Get("rmsnorm");
        byte[] swapped = new byte[code.Length];
        for (int i = 0; i < code.Length; i += 4)
            BinaryPrimitives.WriteUInt32BigEndian(swapped.AsSpan(i), BinaryPrimitives.ReadUInt32LittleEndian(code.AsSpan(i)));
        var a = SpirvModule.Parse(code).PushConstants!;
        var b = SpirvModule.Parse(swapped).PushConstants!;
        Assert.Equal(a.Members.Select(m => (m.Offset, m.Size)), b.Members.Select(m => (m.Offset, m.Size)));
    }

    [Fact]
    public void Damaged_modules_fail_with_a_reason()
    {
        byte[] code = ShaderLibrary.Get("rmsnorm");
        Assert.Contains("magic number", Assert.Throws<InvalidDataException>(() => SpirvModule.Parse(new byte[20])).Message);
        Assert.Contains("whole number of 4-byte words", Assert.Throws<InvalidDataException>(() => SpirvModule.Parse(code.AsSpan(0, 22))).Message);
        // Cut one word into the first instruction longer than a word: its word count runs past the end.
        int position = 5;
        while (BinaryPrimitives.ReadUInt32LittleEndian(code.AsSpan(4 * position)) >> 16 is var count && count < 2)
            position += (int)count;
        var cut = Assert.Throws<InvalidDataException>(() => SpirvModule.Parse(code.AsSpan(0, 4 * (position + 1))));
        Assert.Contains("past the module's", cut.Message);
        // A zero word count would loop forever: rejected.
        byte[] zero = [.. code];
        BinaryPrimitives.WriteUInt32LittleEndian(zero.AsSpan(20), 0);
        Assert.Contains("word count 0", Assert.Throws<InvalidDataException>(() => SpirvModule.Parse(zero)).Message);
    }
}
