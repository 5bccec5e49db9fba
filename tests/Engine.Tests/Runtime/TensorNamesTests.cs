using Engine.Formats;
using Engine.Runtime.Models;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>Every architecture's declared tensor roles find the real tensors of its fixture.</summary>
public sealed class TensorNamesTests
{
    [Theory]
    [InlineData("hf-tiny", "llama")]
    [InlineData("hf-tiny", "qwen2")]
    [InlineData("hf-tiny", "mixtral")]
    [InlineData("hf-tiny", "qwen3_moe")]
    [InlineData("hf-tiny", "llava")]
    [InlineData("hf-tiny", "mamba")]
    [InlineData("hf-tiny", "mamba2")]
    [InlineData("hf-tiny", "rwkv4")]
    [InlineData("rwkv", "rwkv6")]
    [InlineData("rwkv", "rwkv7")]
    public void The_embedding_and_every_vocabulary_sized_matrix_have_their_role(string folder, string fixture)
    {
        using var file = ModelFile.Open(TestPaths.Shared("fixtures", folder, fixture));
        var names = ArchitectureRegistry.TensorNamesOf(file.Config.Architecture);
        var tensors = file.Tensors.Tensors;
        Assert.Contains(tensors, t => names.RoleOf(t.Name) == TensorRole.Embedding);
        // A matrix outside the layers with a row per vocabulary entry is an embedding or a head: never left to the
        // target format.
        foreach (var tensor in tensors.Where(t => t.Shape.Length == 2 && t.Shape[0] == file.Config.VocabSize && names.LayerOf(t.Name) is null
            && names.RoleOf(t.Name) is not (TensorRole.VisionTower or TensorRole.Projector)))
            Assert.Contains(names.RoleOf(tensor.Name), new[] { TensorRole.Embedding, TensorRole.Head });
        // Every decoder layer has tensors, numbered from 0, and routers sit in layers.
        var layers = tensors.Select(t => names.LayerOf(t.Name)).OfType<int>().Distinct().Order().ToArray();
        Assert.Equal(Enumerable.Range(0, file.Config.LayerCount), layers);
        Assert.All(tensors.Where(t => names.RoleOf(t.Name) == TensorRole.Router), t => Assert.NotNull(names.LayerOf(t.Name)));
        if (fixture is "mixtral" or "qwen3_moe") Assert.Contains(tensors, t => names.RoleOf(t.Name) == TensorRole.Router);
        if (fixture is "llava")
        {
            Assert.Contains(tensors, t => names.RoleOf(t.Name) == TensorRole.Projector);
            Assert.Contains(tensors, t => names.RoleOf(t.Name) == TensorRole.VisionTower);
        }
    }
}
