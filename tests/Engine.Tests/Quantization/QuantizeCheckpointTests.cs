using Engine.Formats;
using Engine.Quantizers;
using Engine.Quantizers.Calibration;
using Engine.Runtime;
using Engine.Tests.Formats;
using Xunit;

namespace Engine.Tests.Quantization;

/// <summary>An interrupted calibrated quantization resumes from its checkpoint and writes what an uninterrupted run writes.</summary>
public sealed class QuantizeCheckpointTests
{
    private static CalibrationOptions Small() => new() { Windows = 2, Context = 12, Backend = BackendKind.Cpu, Seed = Random.Shared.Next() };

    private sealed class Interrupted : Exception;

    /// <summary>Throws when the run reaches a tensor of layer 1 to write, after layer 0 is finished (a bit budget's sensitivities come before).</summary>
    private sealed class StopAtLayerOne : IProgress<QuantizeProgress>
    {
        public void Report(QuantizeProgress value)
        {
            if (value.Tensor.StartsWith("model.layers.1.", StringComparison.Ordinal)) throw new Interrupted();
        }
    }

    public static TheoryData<string> Requests => ["gptq q3", "target-bpw 3.0", "pcdvq"];

    private static QuantizeRequest Request(string kind, CalibrationOptions calibration) => kind switch
    {
        "gptq q3" => ModelQuantizer.CreateRequest("q3", 32, null, null, null, "gptq", [], calibration),
        "target-bpw 3.0" => ModelQuantizer.CreateBudgetRequest(3.0, null, [], calibration),
        _ => ModelQuantizer.CreateRequest("pcdvq", null, null, null, null, "pcdvq", [], calibration),
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public void An_interrupted_run_resumes_to_the_bytes_of_an_uninterrupted_one(string kind)
    {
        using var source = ModelFile.Open(TestPaths.Shared("fixtures", "hf-tiny", "llama"));
        using var folder = new TempDirectory();
        var request = Request(kind, Small());
        string resumedPath = folder.File("resumed.epack");

        Assert.Throws<Interrupted>(() => ModelQuantizer.Quantize(source, resumedPath, request, "test", new StopAtLayerOne()));
        Assert.False(File.Exists(resumedPath));
        Assert.NotEmpty(Directory.GetFiles(QuantizeCheckpoint.FolderOf(resumedPath), "part-*.epack"));

        var resumed = ModelQuantizer.Quantize(source, resumedPath, request, "test");
        var whole = ModelQuantizer.Quantize(source, folder.File("whole.epack"), request, "test");
        Assert.True(resumed.ResumedTensors > 0);
        Assert.Equal(0, whole.ResumedTensors);
        Assert.False(Directory.Exists(QuantizeCheckpoint.FolderOf(resumedPath)));

        using var a = ModelFile.Open(resumedPath);
        using var b = ModelFile.Open(folder.File("whole.epack"));
        Assert.Equal(b.Tensors.Tensors.Select(t => t.Name), a.Tensors.Tensors.Select(t => t.Name));
        foreach (var tensor in b.Tensors.Tensors)
        {
            Assert.Equal(tensor, a.Tensors.Require(tensor.Name), TensorInfoComparer.Instance);
            Assert.Equal(b.Tensors.ReadBytes(tensor.Name), a.Tensors.ReadBytes(tensor.Name));
        }
        Assert.Equal(whole.RelativeErrors, resumed.RelativeErrors);
    }

    [Fact]
    public void A_checkpoint_of_another_command_is_refused_and_kept()
    {
        using var source = ModelFile.Open(TestPaths.Shared("fixtures", "hf-tiny", "llama"));
        using var folder = new TempDirectory();
        var calibration = Small();
        string output = folder.File("out.epack");
        Assert.Throws<Interrupted>(() => ModelQuantizer.Quantize(source, output, Request("gptq q3", calibration), "test", new StopAtLayerOne()));
        var parts = Directory.GetFiles(QuantizeCheckpoint.FolderOf(output));

        var other = ModelQuantizer.CreateRequest("q4", 32, null, null, null, "gptq", [], calibration);
        var error = Assert.Throws<IOException>(() => ModelQuantizer.Quantize(source, output, other, "test"));
        Assert.Contains("checkpoint of a different quantization", error.Message);
        Assert.False(File.Exists(output));
        Assert.Equal(parts, Directory.GetFiles(QuantizeCheckpoint.FolderOf(output)));
    }

    private sealed class TensorInfoComparer : IEqualityComparer<TensorInfo>
    {
        public static readonly TensorInfoComparer Instance = new();

        public bool Equals(TensorInfo? x, TensorInfo? y) =>
            x is not null && y is not null && x.Name == y.Name && x.Type == y.Type && x.Parameters == y.Parameters && x.Shape.SequenceEqual(y.Shape);

        public int GetHashCode(TensorInfo obj) => obj.Name.GetHashCode(StringComparison.Ordinal);
    }
}
