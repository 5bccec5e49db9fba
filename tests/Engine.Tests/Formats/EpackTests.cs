using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Engine.Formats;
using Engine.Formats.Epack;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Runtime.Tokenization;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class EpackTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Round_trip_keeps_every_tensor_the_metadata_and_a_usable_tokenizer()
    {
        string tinyprose = TestPaths.Shared("models", "tinyprose-14m");
        var tokenizer = new EpackTokenizer(EpackTokenizer.SentencePieceKind, File.ReadAllBytes(Path.Combine(tinyprose, "tokenizer.model")),
            """{"add_bos_token": true, "chat_template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"}""", null);
        var metadata = EpackSample.Metadata(tokenizer);
        var tensors = EpackSample.Tensors(67, 77, seed: 1);
        string path = _temp.File("model.epack");
        EpackSample.Write(path, metadata, tensors);

        using (var file = EpackFile.Open(path))
        {
            Assert.Equal(1, file.FormatVersion);
            Assert.Equal(tensors.Select(t => t.Info.Name), file.Tensors.Select(t => t.Name));
            foreach (var tensor in tensors)
            {
                var info = file.Require(tensor.Info.Name);
                Assert.Equal(tensor.Info.Shape, info.Shape);
                Assert.Equal(tensor.Info.Type, info.Type);
                Assert.Equal(tensor.Info.Parameters, info.Parameters);
                Assert.Equal(tensor.Data, file.ReadBytes(info.Name));
                Assert.Equal(0, file.GetByteRange(info.Name).Offset % file.Alignment);
            }
            Assert.Empty(file.Verify());

            var read = file.Metadata;
            Assert.Equal(metadata.Architecture, read.Architecture);
            Assert.Equal(metadata.ConfigJson, read.ConfigJson);
            Assert.Equal(metadata.GenerationConfigJson, read.GenerationConfigJson);
            Assert.Equal(metadata.RopeLayout, read.RopeLayout);
            Assert.Equal(tokenizer.Kind, read.Tokenizer!.Kind);
            Assert.Equal(tokenizer.Data, read.Tokenizer.Data);
            Assert.Equal(tokenizer.TokenizerConfigJson, read.Tokenizer.TokenizerConfigJson);
            Assert.Null(read.Tokenizer.ChatTemplate);
            Assert.Equal(metadata.Recipe! with { Overrides = [] }, read.Recipe! with { Overrides = [] });
            Assert.Equal(metadata.Recipe.Overrides, read.Recipe.Overrides);
            Assert.Equal(metadata.Provenance! with { SourceFiles = [] }, read.Provenance! with { SourceFiles = [] });
            Assert.Equal(metadata.Provenance.SourceFiles, read.Provenance.SourceFiles);

            Assert.Equal(32, file.Config.VocabSize);
            Assert.Equal(8, file.Config.HeadDim);
            Assert.Equal(50000.0, file.Config.RopeTheta);
            Assert.Equal(1e-6, file.Config.RmsNormEps);
            Assert.Equal([2, 3], file.Config.EosTokenIds);
        }

        using var model = ModelFile.Open(path);
        var embedded = ModelLoader.LoadTokenizer(model)!;
        var original = TextTokenizer.Load(tinyprose)!;
        const string text = "The jury said it was a fine day.";
        Assert.Equal(original.Encode(text, addBos: true), embedded.Encode(text, addBos: embedded.AddBosByDefault));
        Assert.Equal(text, embedded.Decode(embedded.Encode(text, addBos: true)));
        Assert.NotNull(embedded.ChatTemplate);
    }

    [Fact]
    public void A_llama2c_source_reloads_with_the_same_config_including_interleaved_rope()
    {
        using var source = ModelFile.Open(TestPaths.Shared("models", "stories260K", "stories260K.bin"));
        string path = _temp.File("stories.epack");
        var request = ModelQuantizer.CreateRequest("f32", null, null, null, null, null, []);
        ModelQuantizer.Quantize(source, path, request, "test");

        using var packed = ModelFile.Open(path);
        var (a, b) = (source.Config, packed.Config);
        Assert.Equal(RopeLayout.Interleaved, b.RopeLayout);
        Assert.Equal(a with { Raw = null, EosTokenIds = [] }, b with { Raw = null, EosTokenIds = [] });
        Assert.Empty(b.EosTokenIds);
        Assert.Null(ModelLoader.LoadTokenizer(packed));
        foreach (var info in source.Tensors.Tensors)
            Assert.Equal(source.Tensors.ReadBytes(info.Name), packed.Tensors.ReadBytes(info.Name));
    }

    [Fact]
    public void The_writer_stores_a_repeated_companion_once_and_refuses_a_different_one_under_the_same_name()
    {
        string path = _temp.File("dedupe.epack");
        var codebook = EpackSample.F32("codebook", [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
        using (var writer = EpackWriter.Create(path))
        {
            Assert.True(writer.Add(codebook.Info, codebook.Data));
            Assert.False(writer.Add(codebook.Info, codebook.Data));
            var other = EpackSample.F32("codebook", [4, 2], [8, 7, 6, 5, 4, 3, 2, 1]);
            Assert.Throws<InvalidOperationException>(() => writer.Add(other.Info, other.Data));
            Assert.Throws<ArgumentException>(() => writer.Add(new TensorInfo("short", [3], WeightType.F32), new byte[8]));
            writer.Complete(EpackSample.Metadata(null));
        }
        using var file = EpackFile.Open(path);
        Assert.Single(file.Entries);
    }

    [Fact]
    public void An_unfinished_writer_leaves_no_file_behind()
    {
        string path = _temp.File("unfinished.epack");
        using (var writer = EpackWriter.Create(path))
        {
            var tensor = EpackSample.F32("w", [2, 2], [1, 2, 3, 4]);
            writer.Add(tensor.Info, tensor.Data);
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(_temp.Root));
        Assert.Throws<DirectoryNotFoundException>(() => EpackWriter.Create(_temp.File(Path.Combine("missing", "x.epack"))));
    }

    [Fact]
    public void Bits_per_weight_count_a_companion_toward_its_one_user_and_a_shared_one_only_toward_the_total()
    {
        var own = new TensorInfo("a", [4, 8], WeightType.F16, new FormatParameters(Reference: "factor"));
        var factor = new TensorInfo("factor", [8], WeightType.F32, new FormatParameters(Reference: "codebook"));
        var shared = new TensorInfo("b", [4, 8], WeightType.F16, new FormatParameters(Reference: "codebook"));
        var codebook = new TensorInfo("codebook", [16], WeightType.F32);
        var bytes = new Dictionary<string, long> { ["a"] = 64, ["factor"] = 32, ["b"] = 64, ["codebook"] = 64 };

        var sizes = StoredSizes.Of([own, factor, shared, codebook], name => bytes[name]);

        Assert.Equal(["a", "b"], sizes.Weights.Select(w => w.Info.Name));
        Assert.Equal((64 + 32) * 8.0 / 32, sizes.Weights[0].BitsPerWeight);
        Assert.Equal(64 * 8.0 / 32, sizes.Weights[1].BitsPerWeight);
        Assert.Equal(["factor", "codebook"], sizes.Companions.Select(c => c.Info.Name));
        Assert.Equal(64, sizes.Parameters);
        Assert.Equal(224, sizes.TotalBytes);
        Assert.Equal(224 * 8.0 / 64, sizes.BitsPerWeight);
    }

    [Fact]
    public void Every_flipped_header_byte_is_caught()
    {
        string good = _temp.File("good.epack");
        EpackSample.Write(good, EpackSample.Metadata(null), EpackSample.Tensors(9, 13, seed: 5));
        byte[] bytes = File.ReadAllBytes(good);
        for (int at = 0; at < 64; at++)
        {
            string path = _temp.Write("flipped.epack", Flip(bytes, at));
            var error = Allocation.Throws<InvalidDataException>(() => EpackFile.Open(path).Dispose());
            Assert.StartsWith(path + ": ", error.Message);
        }
    }

    public static TheoryData<string, string> Corruptions() => new()
    {
        { "truncated", "truncated" },
        { "extended", "unexpected bytes after" },
        { "magic", "bad magic" },
        { "version", "format version 2 is not supported" },
        { "checksum byte", "does not match its checksum" },
        { "metadata past the end", "metadata block" },
        { "huge dimensions", "dimension that is not an integer from 1 to 2147483647" },
        { "overflowing dimensions", "too many elements (overflow)" },
        { "unknown format", "unknown format id 999" },
        { "offset past the end", "runs past the end of the file" },
        { "misaligned offset", "not a multiple of the alignment 256" },
        { "overlapping tensors", "overlaps tensor" },
        { "wrong length", "needs" },
        { "duplicate name", "appears twice" },
        { "unknown parameter", "unknown format parameter 'scale'" },
        { "bad parameter", "f32 takes no format parameters" },
        { "bad checksum text", "expected 16 hexadecimal digits" },
        { "flipped data byte", "does not match its checksum" },
        { "not json", "tensor directory: not valid JSON" },
        { "bad rope layout", "'rope_layout' must be" },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void A_corrupt_file_fails_with_a_clear_message_before_allocating(string corruption, string expected)
    {
        string good = _temp.File("good.epack");
        EpackSample.Write(good, EpackSample.Metadata(EpackSample.SmallTokenizer()), EpackSample.Tensors(67, 77, seed: 2));
        byte[] bytes = File.ReadAllBytes(good);
        var (metadataOffset, metadataLength, directoryOffset, _) = EpackSample.Blocks(bytes);
        byte[] bad = corruption switch
        {
            "truncated" => bytes[..^100],
            "extended" => [.. bytes, 0, 0, 0],
            "magic" => Flip(bytes, 1),
            "version" => Set32(bytes, 8, 2),
            "checksum byte" => Flip(bytes, 60),
            "metadata past the end" => EpackSample.Reseal(Set64(bytes, 24, bytes.Length)),
            "huge dimensions" => Edit(bytes, e => e["shape"] = new JsonArray(1L << 40, 1L << 40)),
            "overflowing dimensions" => Edit(bytes, e => e["shape"] = new JsonArray(int.MaxValue, int.MaxValue, int.MaxValue)),
            "unknown format" => Edit(bytes, e => e["format"] = 999),
            "offset past the end" => Edit(bytes, e => e["offset"] = (bytes.Length / 256 + 16) * 256L),
            "misaligned offset" => Edit(bytes, e => e["offset"] = (long)e["offset"]! + 4),
            "overlapping tensors" => EpackSample.EditDirectory(bytes, d => d[1]!["offset"] = (long)d[0]!["offset"]!),
            "wrong length" => Edit(bytes, e => e["length"] = (long)e["length"]! - 4),
            "duplicate name" => EpackSample.EditDirectory(bytes, d => d[1]!["name"] = (string)d[0]!["name"]!),
            "unknown parameter" => Edit(bytes, e => e["parameters"] = new JsonObject { ["scale"] = 2 }),
            "bad parameter" => Edit(bytes, e => e["parameters"] = new JsonObject { ["group_size"] = 32 }),
            "bad checksum text" => Edit(bytes, e => e["xxh3"] = "xyz"),
            "flipped data byte" => Flip(bytes, (int)EpackSample.Blocks(bytes).MetadataOffset - 1),
            "not json" => EpackSample.Reseal(Set8(bytes, (int)directoryOffset, (byte)'}')),
            "bad rope layout" => EpackSample.Reseal(Replace(bytes, (int)metadataOffset, (int)metadataLength, "rotate_half", "rotate_ha1f")),
            _ => throw new ArgumentOutOfRangeException(nameof(corruption)),
        };
        string path = _temp.Write("bad.epack", bad);
        var error = Allocation.Throws<InvalidDataException>(() =>
        {
            using var file = EpackFile.Open(path);
            EpackSample.ReadAndDecodeAll(file);
        });
        Assert.StartsWith(path + ": ", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Verify_names_the_tensor_whose_bytes_changed()
    {
        string path = _temp.File("verify.epack");
        var tensors = EpackSample.Tensors(67, 77, seed: 3);
        EpackSample.Write(path, EpackSample.Metadata(null), tensors);
        long offset;
        using (var file = EpackFile.Open(path)) offset = file.GetByteRange(tensors[1].Info.Name).Offset;
        File.WriteAllBytes(path, Flip(File.ReadAllBytes(path), (int)offset + 5));
        using var corrupt = EpackFile.Open(path);
        Assert.Equal([tensors[1].Info.Name], corrupt.Verify());
    }

    /// <summary>
    /// 1,000 random mutations of a small valid file (bit flips, random byte runs, truncation, extension, edits of the
    /// header's offset and length fields and of the directory's numbers), half of them re-sealed so they get past the
    /// checksums: opening, reading and decoding every tensor either succeeds or throws InvalidDataException, with
    /// allocations bounded by the file's size and the whole run well under 30 seconds.
    /// </summary>
    [Fact]
    public void Fuzzed_files_load_or_fail_with_InvalidDataException_without_large_allocations()
    {
        string good = _temp.File("fuzz-source.epack");
        EpackSample.Write(good, EpackSample.Metadata(EpackSample.SmallTokenizer()), EpackSample.Tensors(24, 77, seed: 4));
        byte[] original = File.ReadAllBytes(good);
        Assert.InRange(original.Length, 10_000, 400_000);  // the PCDVQ codebook (256 KiB) is most of it
        using (var warm = EpackFile.Open(good)) EpackSample.ReadAndDecodeAll(warm);

        var random = new Random(20240607);
        var clock = Stopwatch.StartNew();
        int failures = 0;
        string path = _temp.File("fuzz.epack");
        for (int attempt = 0; attempt < 1000; attempt++)
        {
            var (mutated, description) = Mutate(original, random);
            if (random.Next(2) == 0)
            {
                mutated = EpackSample.Reseal(mutated);
                description += ", re-sealed";
            }
            File.WriteAllBytes(path, mutated);
            long before = GC.GetAllocatedBytesForCurrentThread();
            var attemptClock = Stopwatch.StartNew();
            try
            {
                using var file = EpackFile.Open(path);
                EpackSample.ReadAndDecodeAll(file);
            }
            catch (InvalidDataException e)
            {
                Assert.StartsWith(path + ": ", e.Message);
                failures++;
            }
            catch (Exception e)
            {
                Assert.Fail($"attempt {attempt} ({description}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated <= 4L * mutated.Length + (1 << 20), $"attempt {attempt} ({description}) allocated {allocated} bytes for a {mutated.Length}-byte file");
            Assert.True(attemptClock.Elapsed < TimeSpan.FromSeconds(2), $"attempt {attempt} ({description}) took {attemptClock.Elapsed}");
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"1000 attempts took {clock.Elapsed}");
        // Most mutations must be caught, and some (re-sealed data changes) must get through to the decoders.
        Assert.InRange(failures, 300, 999);
    }

    private static (byte[] Bytes, string Description) Mutate(byte[] original, Random random)
    {
        byte[] bytes = (byte[])original.Clone();
        var (_, _, directoryOffset, directoryLength) = EpackSample.Blocks(bytes);
        switch (random.Next(6))
        {
            case 0:
                int flips = random.Next(1, 9);
                for (int i = 0; i < flips; i++) bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                return (bytes, $"{flips} bit flips");
            case 1:
                int start = random.Next(bytes.Length), run = Math.Min(random.Next(1, 65), bytes.Length - start);
                random.NextBytes(bytes.AsSpan(start, run));
                return (bytes, $"random bytes at {start}..{start + run}");
            case 2:
                int length = random.Next(bytes.Length);
                return (bytes[..length], $"truncated to {length}");
            case 3:
                byte[] tail = new byte[random.Next(1, 1000)];
                random.NextBytes(tail);
                return ([.. bytes, .. tail], $"extended by {tail.Length}");
            case 4:
                int field = 8 + 8 * random.Next(6);
                long value = random.Next(5) switch
                {
                    0 => 0,
                    1 => -1,
                    2 => long.MaxValue - random.Next(100),
                    3 => bytes.Length + random.Next(-300, 300),
                    _ => random.NextInt64(bytes.Length),
                };
                BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(field), value);
                return (bytes, $"header field at {field} = {value}");
            default:
                // Overwrite one run of digits in the directory (a shape, format id, offset or length) with as many random digits.
                var digits = new List<int>();
                for (int i = (int)directoryOffset; i < directoryOffset + directoryLength; i++)
                    if (char.IsAsciiDigit((char)bytes[i]) && !char.IsAsciiDigit((char)bytes[i - 1])) digits.Add(i);
                int at = digits[random.Next(digits.Count)];
                for (int i = at; i < bytes.Length && char.IsAsciiDigit((char)bytes[i]); i++) bytes[i] = (byte)('0' + random.Next(10));
                return (bytes, $"directory digits at {at}");
        }
    }

    private static byte[] Edit(byte[] bytes, Action<JsonObject> edit) =>
        EpackSample.EditDirectory(bytes, directory => edit(directory[0]!.AsObject()));

    private static byte[] Flip(byte[] bytes, int at)
    {
        byte[] copy = (byte[])bytes.Clone();
        copy[at] ^= 0x10;
        return copy;
    }

    private static byte[] Set8(byte[] bytes, int at, byte value)
    {
        byte[] copy = (byte[])bytes.Clone();
        copy[at] = value;
        return copy;
    }

    private static byte[] Set32(byte[] bytes, int at, uint value)
    {
        byte[] copy = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(at), value);
        return copy;
    }

    private static byte[] Set64(byte[] bytes, int at, long value)
    {
        byte[] copy = (byte[])bytes.Clone();
        BinaryPrimitives.WriteInt64LittleEndian(copy.AsSpan(at), value);
        return copy;
    }

    private static byte[] Replace(byte[] bytes, int start, int length, string from, string to)
    {
        byte[] copy = (byte[])bytes.Clone();
        int at = copy.AsSpan(start, length).IndexOf(System.Text.Encoding.UTF8.GetBytes(from));
        Assert.True(at >= 0, $"'{from}' not found");
        System.Text.Encoding.UTF8.GetBytes(to).CopyTo(copy.AsSpan(start + at));
        return copy;
    }
}
