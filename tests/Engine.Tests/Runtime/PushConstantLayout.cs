using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Engine.Runtime.Vulkan;

namespace Engine.Tests.Runtime;

/// <summary>
/// Compares a shader's push-constant block (read from SPIR-V) with the C# struct the backend pushes for it: member
/// by member in layout order, offsets, sizes, scalar kinds, array lengths, names (GLSL camelCase against C#
/// PascalCase, case-insensitively, with a few abbreviations expanded) and the total size.
/// </summary>
public static class PushConstantLayout
{
    /// <summary>Words in GLSL member names that C# spells out; extend as shaders need.</summary>
    public static readonly IReadOnlyDictionary<string, string> Abbreviations = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["src"] = "source",
        ["dst"] = "destination",
    };

    /// <summary>One field of a C# push struct as laid out in memory.</summary>
    /// <param name="Length">Elements: 1 for a scalar, N for a fixed buffer or inline array.</param>
    public sealed record Field(string Name, int Offset, int Size, int Length, int ElementSize, SpirvTypeKind? Scalar)
    {
        public override string ToString() => $"{Name}: {(Scalar?.ToString() ?? "struct")}{(Length > 1 ? $"[{Length}]" : "")} at {Offset}, {Size} bytes";
    }

    /// <summary>The fields of <paramref name="type"/> in layout order, with the property names behind record backing fields.</summary>
    public static IReadOnlyList<Field> FieldsOf(Type type)
    {
        if (!type.IsValueType || type.IsEnum || type.IsPrimitive)
            throw new ArgumentException($"{type.FullName} is not a struct", nameof(type));
        if (type.StructLayoutAttribute?.Value == LayoutKind.Auto)
            throw new ArgumentException($"{type.FullName} has automatic layout: a push struct needs sequential or explicit layout", nameof(type));
        var fields = new List<Field>();
        int cursor = 0;
        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            string name = DeclaredName(field);
            var (length, elementType) = ArrayShape(field);
            int elementSize = SizeOf(elementType);
            int size = length * elementSize;
            int offset;
            try
            {
                offset = (int)Marshal.OffsetOf(type, field.Name);
            }
            catch (ArgumentException)
            {
                // Not marshalable (an inline array, say): sequential layout, each field aligned to its element size.
                int align = Math.Min(elementSize, 8);
                offset = (cursor + align - 1) / align * align;
            }
            cursor = offset + size;
            fields.Add(new Field(name, offset, size, length, elementSize, ScalarKind(elementType)));
        }
        return [.. fields.OrderBy(f => f.Offset)];
    }

    /// <summary>The size the backend pushes: <c>sizeof(T)</c>.</summary>
    public static int SizeOf(Type type) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(type).Invoke(null, null)!;

    /// <summary>
    /// Every difference between <paramref name="block"/> and <paramref name="type"/>; empty when they agree.
    /// <paramref name="names"/> supplies the GLSL member names when <paramref name="block"/> lost them (glslc -O):
    /// a build of the same source that kept them, whose layout must equal <paramref name="block"/>'s.
    /// </summary>
    public static IReadOnlyList<string> Compare(SpirvBlock block, Type type, SpirvBlock? names = null)
    {
        var problems = new List<string>();
        var fields = FieldsOf(type);
        var members = block.Members;
        if (names is not null)
        {
            bool sameLayout = names.Members.Count == members.Count
                && names.Members.Zip(members).All(p => p.First.Offset == p.Second.Offset && p.First.Size == p.Second.Size);
            if (!sameLayout)
                problems.Add($"the build with names ({Describe(names)}) lays the block out unlike the embedded module ({Describe(block)}): the test compiles the shader differently from Engine.Shaders.csproj");
        }
        string? NameOf(int i) => members[i].Name ?? (names is not null && i < names.Members.Count ? names.Members[i].Name : null);

        int common = Math.Min(fields.Count, members.Count);
        for (int i = 0; i < common; i++)
        {
            var (m, f) = (members[i], fields[i]);
            string glsl = NameOf(i) ?? $"member {i}";
            if (NameOf(i) is { } glslName && Normalize(glslName) != Normalize(f.Name))
                problems.Add($"member {i}: GLSL '{glslName}' but C# '{f.Name}' (fields out of order, renamed, or one missing on a side)");
            if (m.Offset != f.Offset)
                problems.Add($"member {i} ({glsl}): GLSL offset {m.Offset}, C# offset {f.Offset}");
            if (m.Size != f.Size)
                problems.Add($"member {i} ({glsl}): GLSL {m.Type} is {m.Size} bytes, C# {f} is {f.Size} bytes");
            var elements = ElementsOf(m.Type);
            if (elements.Length != f.Length)
                problems.Add($"member {i} ({glsl}): GLSL has {elements.Length} element(s), C# {f.Name} has {f.Length}");
            if (elements.Scalar is { } scalar && f.Scalar is { } cs && scalar != cs)
                problems.Add($"member {i} ({glsl}): GLSL {m.Type} is {scalar}, C# {f.Name} is {cs}");
            if (m.Type.Kind == SpirvTypeKind.Array && m.Type.Stride != f.ElementSize * (f.Length / m.Type.Length))
                problems.Add($"member {i} ({glsl}): GLSL array stride {m.Type.Stride} bytes, C# elements are packed {f.ElementSize} bytes apart");
        }
        for (int i = common; i < members.Count; i++)
            problems.Add($"GLSL member {i} ({NameOf(i) ?? "unnamed"}: {members[i].Type} at {members[i].Offset}) has no C# field");
        for (int i = common; i < fields.Count; i++)
            problems.Add($"C# field {i} ({fields[i]}) has no GLSL member");
        int size = SizeOf(type);
        if (size != block.Size)
            problems.Add($"sizeof({type.Name}) = {size} bytes, the GLSL block spans {block.Size} bytes");
        return problems;
    }

    /// <summary>Lower case, camelCase words joined, abbreviations spelled out: <c>srcOffset</c> and <c>SourceOffset</c> both give <c>sourceoffset</c>.</summary>
    public static string Normalize(string name)
    {
        var text = new StringBuilder();
        foreach (string word in Words(name))
            text.Append(Abbreviations.TryGetValue(word, out var full) ? full : word.ToLowerInvariant());
        return text.ToString();
    }

    private static IEnumerable<string> Words(string name)
    {
        int start = 0;
        for (int i = 1; i <= name.Length; i++)
        {
            bool boundary = i == name.Length || name[i] == '_'
                || (char.IsUpper(name[i]) && (char.IsLower(name[i - 1]) || char.IsDigit(name[i - 1])
                    || (i + 1 < name.Length && char.IsLower(name[i + 1]) && char.IsUpper(name[i - 1]))));
            if (!boundary) continue;
            string word = name[start..i].Trim('_');
            if (word.Length > 0) yield return word;
            start = i;
        }
    }

    private static string Describe(SpirvBlock block) => string.Join(", ", block.Members.Select(m => $"{m.Offset}+{m.Size}"));

    /// <summary>Scalars in the member, and their kind: vectors and arrays of scalars are flattened.</summary>
    private static (int Length, SpirvTypeKind? Scalar) ElementsOf(SpirvType type) => type.Kind switch
    {
        SpirvTypeKind.Array when type.Element is { } element => (checked((int)type.Length * ElementsOf(element).Length), ElementsOf(element).Scalar),
        SpirvTypeKind.Int or SpirvTypeKind.UInt or SpirvTypeKind.Float or SpirvTypeKind.Bool => ((int)type.Components, type.Kind),
        _ => (1, null),
    };

    /// <summary>The C# name: the property behind a record's backing field, else the field's own name.</summary>
    private static string DeclaredName(FieldInfo field)
    {
        string name = field.Name;
        if (name.StartsWith('<') && name.IndexOf(">k__BackingField", StringComparison.Ordinal) is > 1 and var end)
            return name[1..end];
        return name.TrimStart('_');
    }

    /// <summary>Elements and element type of a fixed buffer or an [InlineArray] field; (1, the field's type) otherwise.</summary>
    private static (int Length, Type Element) ArrayShape(FieldInfo field)
    {
        if (field.GetCustomAttribute<FixedBufferAttribute>() is { } fixedBuffer)
            return (fixedBuffer.Length, fixedBuffer.ElementType);
        if (field.FieldType.GetCustomAttribute<InlineArrayAttribute>() is { } inline)
        {
            var element = field.FieldType.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic).Single().FieldType;
            return (inline.Length, element);
        }
        return (1, field.FieldType);
    }

    private static SpirvTypeKind? ScalarKind(Type type) =>
        type == typeof(uint) || type == typeof(ushort) || type == typeof(byte) || type == typeof(ulong) ? SpirvTypeKind.UInt
        : type == typeof(int) || type == typeof(short) || type == typeof(sbyte) || type == typeof(long) ? SpirvTypeKind.Int
        : type == typeof(float) || type == typeof(double) || type == typeof(Half) ? SpirvTypeKind.Float
        : type == typeof(bool) ? SpirvTypeKind.Bool
        : null;
}
