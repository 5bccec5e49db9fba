using System.Buffers.Binary;
using System.Text;

namespace Engine.Runtime.Vulkan;

/// <summary>
/// A small SPIR-V reader: walks a module's word stream and returns what the engine checks its C# side against, the
/// push-constant block (members with offsets and sizes, from OpTypeStruct, OpMemberDecorate Offset, OpTypeArray
/// ArrayStride, OpVariable in the PushConstant storage class), the capabilities and extensions it declares, and the
/// debug names where the compiler kept them (glslc -O strips OpName and OpMemberName).
/// </summary>
public sealed class SpirvModule
{
    private const uint Magic = 0x07230203;

    // Opcodes (SPIR-V 1.6 unified specification, section 3.52).
    private const int OpName = 5, OpMemberName = 6, OpExtension = 10, OpCapability = 17;
    private const int OpTypeBool = 20, OpTypeInt = 21, OpTypeFloat = 22, OpTypeVector = 23, OpTypeMatrix = 24;
    private const int OpTypeArray = 28, OpTypeRuntimeArray = 29, OpTypeStruct = 30, OpTypePointer = 32;
    private const int OpConstant = 43, OpSpecConstant = 50, OpVariable = 59, OpDecorate = 71, OpMemberDecorate = 72;

    // Decorations and storage classes.
    private const uint DecorationBlock = 2, DecorationArrayStride = 6, DecorationMatrixStride = 7, DecorationOffset = 35;
    private const uint StorageClassPushConstant = 9;

    /// <summary>SPIR-V version, as major.minor.</summary>
    public Version Version { get; }

    /// <summary>The OpCapability operands, by name where <see cref="CapabilityNames"/> knows them (else "Capability&lt;n&gt;").</summary>
    public IReadOnlyList<string> Capabilities { get; }

    /// <summary>The OpExtension names (e.g. SPV_KHR_16bit_storage).</summary>
    public IReadOnlyList<string> Extensions { get; }

    /// <summary>Whether the module still carries OpName/OpMemberName (false after glslc -O).</summary>
    public bool HasDebugNames { get; }

    /// <summary>Every variable in the PushConstant storage class (a valid module has at most one per entry point).</summary>
    public IReadOnlyList<SpirvBlock> PushConstantBlocks { get; }

    /// <summary>The push-constant block, or null when the module has none.</summary>
    public SpirvBlock? PushConstants => PushConstantBlocks.Count > 0 ? PushConstantBlocks[0] : null;

    private SpirvModule(Version version, IReadOnlyList<string> capabilities, IReadOnlyList<string> extensions, bool hasDebugNames, IReadOnlyList<SpirvBlock> blocks)
    {
        Version = version;
        Capabilities = capabilities;
        Extensions = extensions;
        HasDebugNames = hasDebugNames;
        PushConstantBlocks = blocks;
    }

    /// <summary>Names of the capabilities that matter for choosing kernels; the others read as "Capability&lt;n&gt;".</summary>
    public static IReadOnlyDictionary<uint, string> CapabilityNames { get; } = new Dictionary<uint, string>
    {
        [0] = "Matrix", [1] = "Shader", [9] = "Float16", [10] = "Float64", [11] = "Int64", [12] = "Int64Atomics",
        [22] = "Int16", [39] = "Int8", [61] = "GroupNonUniform", [62] = "GroupNonUniformVote",
        [63] = "GroupNonUniformArithmetic", [64] = "GroupNonUniformBallot", [65] = "GroupNonUniformShuffle",
        [66] = "GroupNonUniformShuffleRelative", [67] = "GroupNonUniformClustered", [68] = "GroupNonUniformQuad",
        [4433] = "StorageBuffer16BitAccess", [4434] = "UniformAndStorageBuffer16BitAccess", [4435] = "StoragePushConstant16",
        [4448] = "StorageBuffer8BitAccess", [4449] = "UniformAndStorageBuffer8BitAccess", [4450] = "StoragePushConstant8",
        [5345] = "VulkanMemoryModel", [6016] = "DotProductInputAll", [6017] = "DotProductInput4x8Bit",
        [6018] = "DotProductInput4x8BitPacked", [6019] = "DotProduct", [6022] = "CooperativeMatrixKHR",
        [5430] = "CooperativeMatrixReductionsNV", [5431] = "CooperativeMatrixConversionsNV",
        [5432] = "CooperativeMatrixPerElementOperationsNV", [5433] = "CooperativeMatrixTensorAddressingNV",
        [5434] = "CooperativeMatrixBlockLoadsNV",
    };

    /// <summary>The optional device features the module's capabilities need (see <see cref="DeviceFeatures"/>).</summary>
    public DeviceFeatureSet RequiredFeatures
    {
        get
        {
            var set = DeviceFeatureSet.None;
            foreach (string capability in Capabilities)
            {
                set |= capability switch
                {
                    "Float16" => DeviceFeatureSet.Float16,
                    "Float64" => DeviceFeatureSet.Float64,
                    "Int16" => DeviceFeatureSet.Int16,
                    "Int8" => DeviceFeatureSet.Int8,
                    "StorageBuffer16BitAccess" or "UniformAndStorageBuffer16BitAccess" => DeviceFeatureSet.Storage16,
                    "StorageBuffer8BitAccess" or "UniformAndStorageBuffer8BitAccess" => DeviceFeatureSet.Storage8,
                    "GroupNonUniformArithmetic" or "GroupNonUniformShuffle" => DeviceFeatureSet.Subgroup,
                    "DotProduct" or "DotProductInputAll" or "DotProductInput4x8Bit" or "DotProductInput4x8BitPacked" => DeviceFeatureSet.IntegerDotProduct,
                    "CooperativeMatrixKHR" => DeviceFeatureSet.CooperativeMatrix,
                    _ when capability.EndsWith("NV", StringComparison.Ordinal) && capability.StartsWith("CooperativeMatrix", StringComparison.Ordinal)
                        => DeviceFeatureSet.CooperativeMatrix2,
                    _ => DeviceFeatureSet.None,
                };
            }
            return set;
        }
    }

    /// <summary>Reads a module from its bytes (either byte order).</summary>
    /// <exception cref="InvalidDataException">Not SPIR-V, truncated, or with an instruction that runs past the end.</exception>
    public static SpirvModule Parse(ReadOnlySpan<byte> code)
    {
        if (code.Length < 20 || code.Length % 4 != 0)
            throw new InvalidDataException($"not a SPIR-V module: {code.Length} bytes (a module is a whole number of 4-byte words, at least 5)");
        var words = new uint[code.Length / 4];
        uint first = BinaryPrimitives.ReadUInt32LittleEndian(code);
        bool swap = first == BinaryPrimitives.ReverseEndianness(Magic);
        if (first != Magic && !swap)
            throw new InvalidDataException($"not a SPIR-V module: magic number 0x{first:X8}, expected 0x{Magic:X8}");
        for (int i = 0; i < words.Length; i++)
        {
            uint w = BinaryPrimitives.ReadUInt32LittleEndian(code[(4 * i)..]);
            words[i] = swap ? BinaryPrimitives.ReverseEndianness(w) : w;
        }
        return new Reader(words).Read();
    }

    private sealed class Reader(uint[] words)
    {
        private readonly Dictionary<uint, string> _names = [];
        private readonly Dictionary<(uint Type, uint Member), string> _memberNames = [];
        private readonly Dictionary<(uint Type, uint Member), uint> _memberOffsets = [];
        private readonly Dictionary<(uint Type, uint Member), uint> _memberMatrixStrides = [];
        private readonly Dictionary<uint, uint> _arrayStrides = [];
        private readonly HashSet<uint> _blocks = [];
        private readonly Dictionary<uint, uint[]> _types = [];       // result id -> the instruction's words (opcode first)
        private readonly Dictionary<uint, uint> _constants = [];     // result id -> low 32 bits of an integer constant
        private readonly Dictionary<uint, (uint StorageClass, uint Type)> _pointers = [];
        private readonly List<(uint PointerType, uint Id)> _pushVariables = [];
        private readonly Dictionary<uint, SpirvType> _resolved = [];

        public SpirvModule Read()
        {
            var capabilities = new List<string>();
            var extensions = new List<string>();
            int position = 5;
            while (position < words.Length)
            {
                uint head = words[position];
                int count = (int)(head >> 16), opcode = (int)(head & 0xFFFF);
                if (count == 0 || position + count > words.Length)
                    throw new InvalidDataException($"SPIR-V instruction at word {position} (opcode {opcode}) has word count {count}, past the module's {words.Length} words");
                var op = new ReadOnlySpan<uint>(words, position, count);
                switch (opcode)
                {
                    case OpName when count >= 3:
                        _names[op[1]] = ReadString(op[2..]);
                        break;
                    case OpMemberName when count >= 4:
                        _memberNames[(op[1], op[2])] = ReadString(op[3..]);
                        break;
                    case OpExtension when count >= 2:
                        extensions.Add(ReadString(op[1..]));
                        break;
                    case OpCapability when count >= 2:
                        capabilities.Add(CapabilityNames.TryGetValue(op[1], out var name) ? name : $"Capability{op[1]}");
                        break;
                    case OpTypeBool or OpTypeInt or OpTypeFloat or OpTypeVector or OpTypeMatrix
                        or OpTypeArray or OpTypeRuntimeArray or OpTypeStruct when count >= 2:
                        _types[op[1]] = op.ToArray();
                        break;
                    case OpTypePointer when count >= 4:
                        _pointers[op[1]] = (op[2], op[3]);
                        break;
                    case OpConstant or OpSpecConstant when count >= 4:
                        _constants[op[2]] = op[3];
                        break;
                    case OpVariable when count >= 4 && op[3] == StorageClassPushConstant:
                        _pushVariables.Add((op[1], op[2]));
                        break;
                    case OpDecorate when count >= 3:
                        if (op[2] == DecorationBlock) _blocks.Add(op[1]);
                        else if (op[2] == DecorationArrayStride && count >= 4) _arrayStrides[op[1]] = op[3];
                        break;
                    case OpMemberDecorate when count >= 4:
                        if (op[3] == DecorationOffset && count >= 5) _memberOffsets[(op[1], op[2])] = op[4];
                        else if (op[3] == DecorationMatrixStride && count >= 5) _memberMatrixStrides[(op[1], op[2])] = op[4];
                        break;
                }
                position += count;
            }

            var blocks = new List<SpirvBlock>();
            foreach (var (pointerType, id) in _pushVariables)
            {
                if (!_pointers.TryGetValue(pointerType, out var pointer))
                    throw new InvalidDataException($"SPIR-V push-constant variable %{id} has type %{pointerType}, which is not a pointer type");
                var type = Resolve(pointer.Type, null);
                if (type.Kind != SpirvTypeKind.Struct)
                    throw new InvalidDataException($"SPIR-V push-constant variable %{id} is a {type}, not a block");
                blocks.Add(new SpirvBlock(
                    _names.GetValueOrDefault(pointer.Type), _names.GetValueOrDefault(id), _blocks.Contains(pointer.Type), type.Members, type.Size));
            }
            uint version = words[1];
            return new SpirvModule(new Version((int)((version >> 16) & 0xFF), (int)((version >> 8) & 0xFF)), capabilities, extensions,
                _names.Count > 0 || _memberNames.Count > 0, blocks);
        }

        /// <param name="matrixStride">For a matrix member: its MatrixStride decoration.</param>
        private SpirvType Resolve(uint id, uint? matrixStride)
        {
            if (matrixStride is null && _resolved.TryGetValue(id, out var known)) return known;
            if (!_types.TryGetValue(id, out var op))
                throw new InvalidDataException($"SPIR-V type %{id} is not declared before its use");
            int count = op.Length;
            SpirvType type;
            switch ((int)(op[0] & 0xFFFF))
            {
                case OpTypeBool:
                    type = new SpirvType(SpirvTypeKind.Bool, 32, 4, 1, 0, 0, null, []);
                    break;
                case OpTypeInt when count >= 4:
                    type = new SpirvType(op[3] != 0 ? SpirvTypeKind.Int : SpirvTypeKind.UInt, op[2], op[2] / 8, 1, 0, 0, null, []);
                    break;
                case OpTypeFloat when count >= 3:
                    type = new SpirvType(SpirvTypeKind.Float, op[2], op[2] / 8, 1, 0, 0, null, []);
                    break;
                case OpTypeVector when count >= 4:
                {
                    var component = Resolve(op[2], null);
                    type = component with { Components = op[3], Size = component.Size * op[3] };
                    break;
                }
                case OpTypeMatrix when count >= 4:
                {
                    var column = Resolve(op[2], null);
                    uint stride = matrixStride ?? column.Size;
                    type = new SpirvType(SpirvTypeKind.Matrix, column.ScalarBits, stride * op[3], column.Components, op[3], stride, column, []);
                    break;
                }
                case OpTypeArray when count >= 4:
                {
                    var element = Resolve(op[2], matrixStride);
                    if (!_constants.TryGetValue(op[3], out uint length))
                        throw new InvalidDataException($"SPIR-V array type %{id}: its length %{op[3]} is not an integer constant");
                    uint stride = _arrayStrides.GetValueOrDefault(id, element.Size);
                    type = new SpirvType(SpirvTypeKind.Array, element.ScalarBits, stride * length, element.Components, length, stride, element, []);
                    break;
                }
                case OpTypeRuntimeArray when count >= 3:
                {
                    var element = Resolve(op[2], matrixStride);
                    type = new SpirvType(SpirvTypeKind.RuntimeArray, element.ScalarBits, 0, element.Components, 0,
                        _arrayStrides.GetValueOrDefault(id, element.Size), element, []);
                    break;
                }
                case OpTypeStruct:
                {
                    var members = new List<SpirvMember>();
                    uint size = 0;
                    for (uint m = 0; m + 2 < count; m++)
                    {
                        var memberType = Resolve(op[2 + (int)m], _memberMatrixStrides.TryGetValue((id, m), out uint ms) ? ms : null);
                        if (!_memberOffsets.TryGetValue((id, m), out uint offset))
                            throw new InvalidDataException($"SPIR-V struct %{id} member {m} has no Offset decoration (not an explicitly laid out block)");
                        members.Add(new SpirvMember(m, _memberNames.GetValueOrDefault((id, m)), offset, memberType.Size, memberType));
                        size = Math.Max(size, offset + memberType.Size);
                    }
                    type = new SpirvType(SpirvTypeKind.Struct, 0, size, 1, 0, 0, null, members) { StructName = _names.GetValueOrDefault(id) };
                    break;
                }
                default:
                    throw new InvalidDataException($"SPIR-V type %{id} (opcode {op[0] & 0xFFFF}) is malformed");
            }
            if (matrixStride is null) _resolved[id] = type;
            return type;
        }

        private static string ReadString(ReadOnlySpan<uint> operands)
        {
            var bytes = new List<byte>(operands.Length * 4);
            foreach (uint w in operands)
            {
                for (int b = 0; b < 4; b++)
                {
                    byte c = (byte)(w >> (8 * b));
                    if (c == 0) return Encoding.UTF8.GetString([.. bytes]);
                    bytes.Add(c);
                }
            }
            throw new InvalidDataException("SPIR-V literal string is not NUL-terminated within its instruction");
        }
    }
}

/// <summary>A push-constant (or other explicitly laid out) block: its members in declaration order and the bytes it spans.</summary>
/// <param name="TypeName">The block's type name (GLSL <c>Push</c>) where the module kept names.</param>
/// <param name="VariableName">The instance name (GLSL <c>p</c>) where kept.</param>
/// <param name="IsBlock">Decorated Block, as a push-constant struct must be.</param>
/// <param name="Size">The end of the last member: the bytes a push-constant range must cover.</param>
public sealed record SpirvBlock(string? TypeName, string? VariableName, bool IsBlock, IReadOnlyList<SpirvMember> Members, uint Size);

/// <summary>One member of a block: its index, its name where kept, its Offset decoration and its size in bytes.</summary>
public sealed record SpirvMember(uint Index, string? Name, uint Offset, uint Size, SpirvType Type)
{
    public override string ToString() => $"{Name ?? $"member{Index}"}: {Type} at {Offset}, {Size} bytes";
}

public enum SpirvTypeKind { Bool, Int, UInt, Float, Matrix, Array, RuntimeArray, Struct }

/// <summary>
/// A type as laid out in the block: scalars (with <see cref="Components"/> &gt; 1 for vectors), matrices, arrays
/// (with <see cref="Length"/> elements <see cref="Stride"/> bytes apart, the element in <see cref="Element"/>) and structs.
/// </summary>
/// <param name="ScalarBits">Width of the scalar at the bottom of the type (32 for uint, float, uvec4, uint[4]).</param>
public sealed record SpirvType(
    SpirvTypeKind Kind, uint ScalarBits, uint Size, uint Components, uint Length, uint Stride, SpirvType? Element, IReadOnlyList<SpirvMember> Members)
{
    /// <summary>The struct's name where kept.</summary>
    public string? StructName { get; init; }

    /// <summary>The scalar kind at the bottom of arrays and matrices.</summary>
    public SpirvTypeKind ScalarKind => Element?.ScalarKind ?? (Kind == SpirvTypeKind.Matrix ? SpirvTypeKind.Float : Kind);

    public override string ToString() => Kind switch
    {
        SpirvTypeKind.Bool => "bool",
        SpirvTypeKind.Int or SpirvTypeKind.UInt or SpirvTypeKind.Float =>
            $"{(Kind == SpirvTypeKind.Int ? "i" : Kind == SpirvTypeKind.UInt ? "u" : "f")}{ScalarBits}{(Components > 1 ? $"x{Components}" : "")}",
        SpirvTypeKind.Matrix => $"mat{Length}x{Components} f{ScalarBits}",
        SpirvTypeKind.Array => $"{Element}[{Length}]",
        SpirvTypeKind.RuntimeArray => $"{Element}[]",
        _ => $"struct {StructName ?? "?"} ({Members.Count} members)",
    };
}
