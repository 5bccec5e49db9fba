using Xunit;

namespace Engine.Tests.Cli;

public sealed class InspectCommandTests
{
    [Theory]
    [InlineData("fixtures/hf-tiny/llama", "heads: 4 (kv 2, dim 16)", "rope theta")]
    [InlineData("fixtures/hf-tiny/mamba2", "layers: 2, ffn", "state: recurrent")]
    [InlineData("fixtures/rwkv/rwkv7", "heads: 4", "state: recurrent")]
    public void Inspect_describes_attention_and_recurrent_models_by_what_they_have(string folder, string shape, string kind)
    {
        var result = EngineProcess.Run("inspect", TestPaths.Shared(folder.Split('/')));
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains(shape, result.Output);
        Assert.Contains(kind, result.Output);
    }
}
