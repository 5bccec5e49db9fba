using Engine.Formats;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class ModelFileTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Sharded_hf_folder_opens_with_its_config()
    {
        string folder = TestPaths.Shared("models", "tinyprose-14m");
        using var model = ModelFile.Open(folder);

        Assert.Equal(folder, model.Path);
        Assert.IsType<ShardedSafetensors>(model.Tensors);
        Assert.Equal((384, 8, 6, 2, 4096), (model.Config.HiddenSize, model.Config.LayerCount, model.Config.HeadCount, model.Config.KvHeadCount, model.Config.VocabSize));
        Assert.Equal(74, model.Tensors.Tensors.Count);
        Assert.Equal(384, model.Tensors.ReadFloat32("model.norm.weight").Length);
        Assert.EndsWith("model.safetensors.index.json", model.Tensors.Path);
    }

    [Fact]
    public void Single_file_hf_folder_and_the_safetensors_file_itself_agree()
    {
        string folder = TestPaths.Shared("fixtures", "hf-tiny", "qwen2");
        using var byFolder = ModelFile.Open(folder);
        using var byFile = ModelFile.Open(Path.Combine(folder, "model.safetensors"));

        Assert.IsType<SafetensorsFile>(byFolder.Tensors);
        Assert.IsType<SafetensorsFile>(byFile.Tensors);
        Assert.Equal(1_000_000.0, byFile.Config.RopeTheta);
        Assert.Equal(byFolder.Config.EosTokenIds, byFile.Config.EosTokenIds);
        IReadOnlyList<int> eos = byFolder.Config.EosTokenIds;
        Assert.Equal(byFolder.Config with { Raw = null, EosTokenIds = eos }, byFile.Config with { Raw = null, EosTokenIds = eos });
        Assert.Equal(27 - 1, byFolder.Tensors.Tensors.Count); // header entries minus __metadata__
        Assert.Equal([32L], byFolder.Tensors.Tensors.Single(t => t.Name == "model.layers.0.self_attn.k_proj.bias").Shape);
        Assert.Equal(byFolder.Tensors.ReadFloat32("model.layers.1.self_attn.q_proj.bias"), byFile.Tensors.ReadFloat32("model.layers.1.self_attn.q_proj.bias"));
    }

    [Fact]
    public void Llama2c_bin_opens_with_its_header_config()
    {
        string path = TestPaths.Shared("models", "stories260K", "stories260K.bin");
        using var model = ModelFile.Open(path);

        Assert.IsType<Llama2cFile>(model.Tensors);
        Assert.Equal(RopeLayout.Interleaved, model.Config.RopeLayout);
        Assert.Equal((64, 5, 512), (model.Config.HiddenSize, model.Config.LayerCount, model.Config.VocabSize));
        Assert.Equal(path, model.Tensors.Path);
    }

    [Fact]
    public void Missing_path_is_file_not_found_naming_it()
    {
        string missing = _temp.File("nowhere");
        var error = Assert.Throws<FileNotFoundException>(() => ModelFile.Open(missing));
        Assert.Equal($"model path '{missing}' does not exist", error.Message);
    }

    [Fact]
    public void Unsupported_file_kind_says_what_is_expected()
    {
        string gguf = _temp.Write("model.gguf", [0x47, 0x47, 0x55, 0x46]);
        var error = Assert.Throws<InvalidDataException>(() => ModelFile.Open(gguf));
        Assert.StartsWith($"unsupported model path '{gguf}' (expected a Hugging Face folder, a llama2.c .bin", error.Message);

        var empty = Assert.Throws<InvalidDataException>(() => ModelFile.Open(_temp.Root));
        Assert.Contains($"unsupported model path '{_temp.Root}'", empty.Message);
    }

    [Fact]
    public void Hf_folder_without_weights_names_the_folder()
    {
        _temp.Write("config.json", """{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1}""");
        var error = Assert.Throws<InvalidDataException>(() => ModelFile.Open(_temp.Root));
        Assert.Equal($"model folder '{_temp.Root}' has neither model.safetensors nor model.safetensors.index.json", error.Message);
    }

    [Fact]
    public void Hf_folder_without_config_names_config_json()
    {
        _temp.Write("model.safetensors", new SafetensorsBuilder().AddF32("x", [1], 1).Build());
        var error = Assert.Throws<FileNotFoundException>(() => ModelFile.Open(_temp.Root));
        Assert.Contains(Path.Combine(_temp.Root, "config.json"), error.Message);
    }

    [Fact]
    public void Read_float32_names_a_missing_tensor_and_its_source()
    {
        _temp.Write("config.json", """{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1}""");
        string weights = _temp.Write("model.safetensors", new SafetensorsBuilder().AddF32("x", [2], 0.5f, -4f).Build());
        using var model = ModelFile.Open(_temp.Root);

        Assert.Equal([0.5f, -4f], model.Tensors.ReadFloat32("x"));
        var error = Assert.Throws<InvalidDataException>(() => model.Tensors.ReadFloat32("model.norm.weight"));
        Assert.Equal($"tensor 'model.norm.weight' not found in {weights}", error.Message);
    }
}
