using Engine.Formats;
using Engine.Quantizers;
using Engine.Runtime;
using Engine.Runtime.Models;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>The mixture-of-experts ops (routing, expert-indexed products, combination) on Vulkan against the CPU reference.</summary>
public sealed class MoeOpTests(BackendPair backends) : IClassFixture<BackendPair>
{
    private (float[] Cpu, float[] Vulkan) Both(Func<IBackend, ITensor> op, int outputLength) => WeightFormatChecks.Both(backends, op, outputLength);

    private static ITensor Route(IBackend be, float[] logits, int tokens, int experts, int k, bool normalize = true, float scale = 1f)
    {
        var routing = be.Allocate(MoeRouting.Length(tokens, k, experts));
        be.MoeRoute(be.UploadVector(logits), routing, tokens, experts, k, normalize, scale);
        return routing;
    }

    [Theory]
    [InlineData(37, 11, 1, true, 1f)]
    [InlineData(37, 11, 3, true, 1f)]
    [InlineData(70, 11, 3, false, 2.5f)]
    [InlineData(5, 7, 7, true, 1f)]
    [InlineData(1, 130, 8, false, 1f)]
    [InlineData(300, 64, 8, true, 1f)]
    public void Routing_matches_reference(int tokens, int experts, int k, bool normalize, float scale)
    {
        float[] logits = WeightFormatChecks.RandomValues(tokens * experts, 4);
        int length = MoeRouting.Length(tokens, k, experts);
        var (cpu, gpu) = Both(be => Route(be, logits, tokens, experts, k, normalize, scale), length);
        WeightFormatChecks.AssertClose(cpu, gpu, 1e-5, $"routing {tokens} tokens to {k} of {experts}");

        int slots = tokens * k;
        for (int t = 0; t < tokens; t++)
        {
            // The chosen experts are the k largest logits in order, with weights from the softmax over all experts.
            var row = logits.AsSpan(t * experts, experts).ToArray();
            int[] order = [.. Enumerable.Range(0, experts).OrderByDescending(e => row[e]).ThenBy(e => e)];
            double total = row.Sum(v => Math.Exp(v - row.Max()));
            double chosen = order.Take(k).Sum(e => Math.Exp(row[e] - row.Max()) / total);
            for (int j = 0; j < k; j++)
            {
                Assert.Equal(order[j], (int)cpu[MoeRouting.Expert(t * k + j)]);
                double weight = Math.Exp(row[order[j]] - row.Max()) / total / (normalize ? chosen : 1) * scale;
                Assert.Equal(weight, cpu[MoeRouting.Weight(t * k + j)], 1e-6);
            }
        }
        // Grouping: every slot listed once, under its expert, ascending.
        var listed = new List<int>();
        for (int e = 0; e < experts; e++)
        {
            int start = (int)cpu[MoeRouting.GroupStart(slots, e)], end = (int)cpu[MoeRouting.GroupStart(slots, e + 1)];
            var group = Enumerable.Range(start, end - start).Select(i => (int)cpu[MoeRouting.List(slots, experts) + i]).ToArray();
            Assert.All(group, s => Assert.Equal(e, (int)cpu[MoeRouting.Expert(s)]));
            Assert.Equal(group.Order(), group);
            listed.AddRange(group);
        }
        Assert.Equal(Enumerable.Range(0, slots), listed.Order());
    }

    [Fact]
    public void Routing_breaks_ties_toward_the_lower_expert()
    {
        const int tokens = 3, experts = 6, k = 3;
        float[] logits =
        [
            1, 2, 2, 2, 0, 2,    // four-way tie for the top: experts 1, 2, 3
            0, 0, 0, 0, 0, 0,    // all equal: 0, 1, 2 with weights 1/3 each
            5, 1, 1, 5, 1, 1,    // tie at the top and below: 0, 3, 1
        ];
        int length = MoeRouting.Length(tokens, k, experts);
        var (cpu, gpu) = Both(be => Route(be, logits, tokens, experts, k), length);
        WeightFormatChecks.AssertClose(cpu, gpu, 1e-6, "tied routing");
        int[] expected = [1, 2, 3, 0, 1, 2, 0, 3, 1];
        for (int s = 0; s < expected.Length; s++) Assert.Equal(expected[s], (int)cpu[MoeRouting.Expert(s)]);
        for (int j = 0; j < k; j++) Assert.Equal(1f / 3, cpu[MoeRouting.Weight(k + j)], 1e-6f);
    }

    public static TheoryData<WeightType, int, bool> ExpertCases()
    {
        var cases = new TheoryData<WeightType, int, bool>();
        foreach (var type in new[] { WeightType.F16, WeightType.Q4, WeightType.F32, WeightType.Sefp, WeightType.Pcdvq })
            foreach (int tokens in new[] { 1, 70 })
                foreach (bool perSlot in new[] { false, true })
                    cases.Add(type, tokens, perSlot);
        return cases;
    }

    [Theory]
    [MemberData(nameof(ExpertCases))]
    public void Expert_linear_matches_reference(WeightType type, int tokens, bool inputPerSlot)
    {
        const int experts = 5, rows = 67, columns = 130, k = 2;
        var format = WeightTypes.Get(type);
        var encoded = Enumerable.Range(0, experts).Select(e =>
            WeightEncoders.Encode(type, $"experts.{e}", WeightFormatChecks.RandomValues(rows * columns), rows, columns, format.DefaultParameters)).ToArray();
        using var shared = new InMemoryTensors(encoded.SelectMany(x => x.Companions).DistinctBy(c => c.Info.Name));
        float[] logits = WeightFormatChecks.RandomValues(tokens * experts, 4);
        int inputRows = tokens * (inputPerSlot ? k : 1);
        float[] x = WeightFormatChecks.RandomValues(inputRows * columns);
        var (cpu, gpu) = Both(be =>
        {
            var routing = Route(be, logits, tokens, experts, k);
            var y = be.Allocate(tokens * k * rows);
            var stack = be.UploadExperts([.. encoded.Select(x => x.Info)], [.. encoded.Select(x => x.Data)], shared);
            be.ExpertLinear(stack, experts, routing, be.UploadVector(x), y, tokens, k, inputPerSlot);
            return y;
        }, tokens * k * rows);
        WeightFormatChecks.AssertClose(cpu, gpu, 1e-4, $"{format.Name} expert linear, {tokens} token(s), input per slot {inputPerSlot}");

        // The CPU reference is the chosen expert's ordinary product.
        var be = backends.Cpu;
        var table = new float[MoeRouting.Length(tokens, k, experts)];
        be.Read(Route(be, logits, tokens, experts, k), table);
        for (int e = 0; e < experts; e++)
        {
            var own = new float[inputRows * rows];
            var y = be.Allocate(own.Length);
            be.Linear(be.UploadMatrix(encoded[e].Info, encoded[e].Data, shared), null, be.UploadVector(x), y, inputRows);
            be.Read(y, own);
            for (int s = 0; s < tokens * k; s++)
            {
                if ((int)table[MoeRouting.Expert(s)] != e) continue;
                int input = inputPerSlot ? s : s / k;
                for (int r = 0; r < rows; r++) Assert.Equal(own[input * rows + r], cpu[s * rows + r], 1e-4f);
            }
        }
    }

    [Fact]
    public void Expert_linear_finds_experts_in_every_chunk_of_a_stack_larger_than_one_binding()
    {
        // 3 x 2800 x 4100 f32 is 138 MB: above lavapipe's 128 MiB range, so the stack is stored as experts {0, 1} and {2}.
        const int experts = 3, rows = 2800, columns = 4100, k = 2;
        var stack = new TensorInfo("experts", [experts, rows, columns], WeightType.F32);
        byte[] weights = WeightEncoders.Encode(WeightType.F32, "experts", WeightFormatChecks.RandomValues(experts * rows * columns), experts * rows, columns).Data;
        foreach (int tokens in new[] { 1, 3 })
        {
            float[] logits = WeightFormatChecks.RandomValues(tokens * experts, 4);
            float[] x = WeightFormatChecks.RandomValues(tokens * columns);
            var (cpu, gpu) = Both(be =>
            {
                var routing = Route(be, logits, tokens, experts, k);
                var y = be.Allocate(tokens * k * rows);
                be.ExpertLinear(be.UploadMatrix(stack, weights), experts, routing, be.UploadVector(x), y, tokens, k, inputPerSlot: false);
                return y;
            }, tokens * k * rows);
            WeightFormatChecks.AssertClose(cpu, gpu, 1e-5, $"chunked expert stack, {tokens} token(s)");
        }
    }

    [Theory]
    [InlineData(false, 1)]
    [InlineData(false, 40)]
    [InlineData(true, 1)]
    [InlineData(true, 40)]
    public void Low_rank_experts_match_each_expert_product(bool mobie, int tokens)
    {
        // Own U and a q4 residual per expert (the svd format), or MoBiE's U shared by every expert with binary V_e.
        const int experts = 4, rows = 37, columns = 72, k = 2;
        var values = Enumerable.Range(0, experts).Select(_ => WeightFormatChecks.RandomValues(rows * columns)).ToArray();
        string[] names = [.. Enumerable.Range(0, experts).Select(e => $"experts.{e}.weight")];
        IEnumerable<StoredBytes> stored = mobie
            ? new MobieEncoder(6).Encode("experts.shared_u", [.. names.Zip(values)], rows, columns).Tensors()
            : names.SelectMany((name, e) =>
            {
                var encoded = new LowRankEncoder { ResidualFormat = WeightType.Q4 }.Encode(name, values[e], rows, columns, new FormatParameters(Rank: 5));
                return encoded.Companions.Append(encoded.Tensor);
            });
        using var source = new InMemoryTensors(stored);
        float[] logits = WeightFormatChecks.RandomValues(tokens * experts, 4);
        float[] x = WeightFormatChecks.RandomValues(tokens * columns);
        var (cpu, gpu) = Both(be =>
        {
            var routing = Route(be, logits, tokens, experts, k);
            var y = be.Allocate(tokens * k * rows);
            var stack = new WeightLoader(source, be).Experts(names, rows, columns);
            Assert.IsType<LowRankExperts>(stack);
            be.ExpertLinear(stack, experts, routing, be.UploadVector(x), y, tokens, k, inputPerSlot: false);
            return y;
        }, tokens * k * rows);
        WeightFormatChecks.AssertClose(cpu, gpu, 1e-4, $"low-rank experts (mobie {mobie}), {tokens} token(s)");

        var cpuBackend = backends.Cpu;
        var table = new float[MoeRouting.Length(tokens, k, experts)];
        cpuBackend.Read(Route(cpuBackend, logits, tokens, experts, k), table);
        for (int e = 0; e < experts; e++)
        {
            var own = new float[tokens * rows];
            var y = cpuBackend.Allocate(own.Length);
            cpuBackend.Linear(cpuBackend.UploadMatrix(source.Tensors.First(t => t.Name == names[e]), source.ReadBytes(names[e]), source), null,
                cpuBackend.UploadVector(x), y, tokens);
            cpuBackend.Read(y, own);
            for (int s = 0; s < tokens * k; s++)
                if ((int)table[MoeRouting.Expert(s)] == e)
                    for (int r = 0; r < rows; r++) Assert.Equal(own[s / k * rows + r], cpu[s * rows + r], 1e-4f);
        }
    }

    [Theory]
    [InlineData(1, false, false, false)]
    [InlineData(1, true, false, true)]
    [InlineData(9, true, false, false)]
    [InlineData(70, true, true, true)]
    public void Combine_matches_reference(int tokens, bool withShared, bool withScale, bool accumulate)
    {
        const int experts = 6, k = 3, dim = 131;
        float[] logits = WeightFormatChecks.RandomValues(tokens * experts, 4);
        float[] outputs = WeightFormatChecks.RandomValues(tokens * k * dim);
        float[] shared = WeightFormatChecks.RandomValues(tokens * dim);
        float[] scale = WeightFormatChecks.RandomValues(tokens);
        float[] residual = WeightFormatChecks.RandomValues(tokens * dim);
        var (cpu, gpu) = Both(be =>
        {
            var result = be.UploadVector(residual);
            be.MoeCombine(be.UploadVector(outputs), Route(be, logits, tokens, experts, k), withShared ? be.UploadVector(shared) : null,
                withScale ? be.UploadVector(scale) : null, result, tokens, k, dim, accumulate);
            return result;
        }, tokens * dim);
        WeightFormatChecks.AssertClose(cpu, gpu, 1e-5, $"combine of {tokens} token(s), accumulate={accumulate}");
        if (!accumulate) return;
        // Accumulating adds exactly the plain combination to the residual.
        var plain = backends.Cpu.Allocate(tokens * dim);
        backends.Cpu.MoeCombine(backends.Cpu.UploadVector(outputs), Route(backends.Cpu, logits, tokens, experts, k), withShared ? backends.Cpu.UploadVector(shared) : null,
            withScale ? backends.Cpu.UploadVector(scale) : null, plain, tokens, k, dim);
        var sum = new float[tokens * dim];
        backends.Cpu.Read(plain, sum);
        for (int i = 0; i < sum.Length; i++) Assert.Equal(residual[i] + sum[i], cpu[i]);
    }
}
