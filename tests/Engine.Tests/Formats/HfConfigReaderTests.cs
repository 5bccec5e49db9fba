using System.Text.Json;
using Engine.Formats;
using Xunit;

namespace Engine.Tests.Formats;

public sealed class HfConfigReaderTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Tinyprose_config_reads_theta_from_rope_parameters()
    {
        var config = HfConfigReader.Read(TestPaths.Shared("models", "tinyprose-14m"));

        Assert.Equal("llama", config.Architecture);
        Assert.Equal(4096, config.VocabSize);
        Assert.Equal(384, config.HiddenSize);
        Assert.Equal(1024, config.IntermediateSize);
        Assert.Equal(8, config.LayerCount);
        Assert.Equal(6, config.HeadCount);
        Assert.Equal(2, config.KvHeadCount);
        Assert.Equal(64, config.HeadDim);
        Assert.Equal(1024, config.MaxPositions);
        Assert.Equal(1e-5, config.RmsNormEps);
        Assert.Equal(10000.0, config.RopeTheta);
        Assert.Equal(RopeLayout.RotateHalf, config.RopeLayout);
        Assert.True(config.TieWordEmbeddings);
        Assert.Equal(1, config.BosTokenId);
        Assert.Equal([2], config.EosTokenIds);
        Assert.Equal("bfloat16", config.Raw!.Value.GetProperty("dtype").GetString());
        Assert.Equal("default", config.Raw.Value.GetProperty("rope_parameters").GetProperty("rope_type").GetString());
    }

    [Fact]
    public void Qwen2_fixture_has_theta_1e6_tied_embeddings_and_the_default_head_dim()
    {
        var config = HfConfigReader.Read(TestPaths.Shared("fixtures", "hf-tiny", "qwen2"));

        Assert.Equal("qwen2", config.Architecture);
        Assert.Equal(1_000_000.0, config.RopeTheta);
        Assert.True(config.TieWordEmbeddings);
        Assert.Equal(1e-6, config.RmsNormEps);
        Assert.Equal(256, config.VocabSize);
        Assert.Equal(64, config.HiddenSize);
        Assert.Equal(172, config.IntermediateSize);
        Assert.Equal(2, config.LayerCount);
        Assert.Equal(4, config.HeadCount);
        Assert.Equal(2, config.KvHeadCount);
        Assert.Equal(16, config.HeadDim); // no head_dim in the file: 64 / 4
        Assert.Equal(512, config.MaxPositions);
        Assert.Equal([2], config.EosTokenIds);
    }

    [Fact]
    public void BlinkDL_rwkv_config_reads_its_own_field_names()
    {
        var config = HfConfigReader.Read(TestPaths.Shared("fixtures", "rwkv", "rwkv6"));

        Assert.Equal("rwkv6", config.Architecture);
        Assert.Equal(256, config.VocabSize);
        Assert.Equal(64, config.HiddenSize);
        Assert.Equal(2, config.LayerCount);
        Assert.Equal(224, config.IntermediateSize);
        Assert.Equal(4, config.HeadCount);
        Assert.Equal(16, config.HeadDim);
        Assert.Equal(1e-5, config.RmsNormEps);
        Assert.Equal(0.00064, config.Raw!.Value.GetProperty("group_norm_epsilon").GetDouble());
        Assert.Equal(8, config.Raw.Value.GetProperty("d_mix_lora").GetInt32());

        string folder = Folder("""{"architecture": "rwkv7", "vocab_size": 10, "n_layer": 1}""");
        var error = Assert.Throws<InvalidDataException>(() => HfConfigReader.Read(folder));
        Assert.Equal($"{Path.Combine(folder, "config.json")}: missing required field 'n_embd'", error.Message);
    }

    [Fact]
    public void Llama_and_mixtral_fixtures_untied_and_null_head_dim_defaults()
    {
        var llama = HfConfigReader.Read(TestPaths.Shared("fixtures", "hf-tiny", "llama"));
        Assert.False(llama.TieWordEmbeddings);
        Assert.Equal((64, 172, 2, 4, 2, 16, 10000.0), (llama.HiddenSize, llama.IntermediateSize, llama.LayerCount, llama.HeadCount, llama.KvHeadCount, llama.HeadDim, llama.RopeTheta));

        var mixtral = HfConfigReader.Read(TestPaths.Shared("fixtures", "hf-tiny", "mixtral"));
        Assert.Equal("mixtral", mixtral.Architecture);
        Assert.Equal(16, mixtral.HeadDim); // "head_dim": null
        Assert.Equal(1_000_000.0, mixtral.RopeTheta);
        Assert.Equal(4, mixtral.Raw!.Value.GetProperty("num_local_experts").GetInt32());
    }

    [Fact]
    public void Recurrent_architectures_without_attention_fields_read_as_zero_heads()
    {
        var mamba = HfConfigReader.Read(TestPaths.Shared("fixtures", "hf-tiny", "mamba"));
        Assert.Equal("mamba", mamba.Architecture);
        Assert.Equal((256, 64, 128, 2), (mamba.VocabSize, mamba.HiddenSize, mamba.IntermediateSize, mamba.LayerCount));
        Assert.Equal((0, 0, 0), (mamba.HeadCount, mamba.KvHeadCount, mamba.HeadDim));
        Assert.True(mamba.TieWordEmbeddings);
        Assert.Equal(16, mamba.Raw!.Value.GetProperty("state_size").GetInt32());

        var rwkv = HfConfigReader.Read(TestPaths.Shared("fixtures", "hf-tiny", "rwkv4"));
        Assert.Equal("rwkv", rwkv.Architecture);
        Assert.Equal((0, 256, 512), (rwkv.HeadCount, rwkv.IntermediateSize, rwkv.MaxPositions)); // context_length
        Assert.Equal(0, rwkv.BosTokenId);
        Assert.Equal([0], rwkv.EosTokenIds);

        var mamba2 = HfConfigReader.Read(TestPaths.Shared("fixtures", "hf-tiny", "mamba2"));
        Assert.Equal("mamba2", mamba2.Architecture);
        Assert.Equal(16, mamba2.HeadDim);
        Assert.Equal("Infinity", mamba2.Raw!.Value.GetProperty("time_step_limit")[1].GetProperty("__float__").GetString());
    }

    [Fact]
    public void Llava_reads_the_language_model_from_text_config()
    {
        var llava = HfConfigReader.Read(TestPaths.Shared("fixtures", "hf-tiny", "llava"));
        Assert.Equal("llava", llava.Architecture);
        Assert.Equal((256, 64, 172, 2, 4, 2, 16), (llava.VocabSize, llava.HiddenSize, llava.IntermediateSize, llava.LayerCount, llava.HeadCount, llava.KvHeadCount, llava.HeadDim));
        Assert.Equal(512, llava.MaxPositions);
        Assert.Equal(32, llava.Raw!.Value.GetProperty("vision_config").GetProperty("hidden_size").GetInt32());
    }

    private string Folder(string config, string? generation = null)
    {
        string folder = Path.Combine(_temp.Root, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), config);
        if (generation is not null)
            File.WriteAllText(Path.Combine(folder, "generation_config.json"), generation);
        return folder;
    }

    private static readonly (string Name, string Value)[] Minimal =
    [
        ("model_type", "\"llama\""), ("vocab_size", "100"), ("hidden_size", "48"), ("num_hidden_layers", "3"),
        ("num_attention_heads", "6"), ("intermediate_size", "96"),
    ];

    /// <summary>A config.json text: the minimal fields, each replaced by a same-named change (null removes it), then the new ones.</summary>
    private static string Json(params (string Name, string? Value)[] changes)
    {
        var fields = Minimal.Select(f => (f.Name, Value: (string?)f.Value)).ToList();
        foreach (var (name, value) in changes)
        {
            int at = fields.FindIndex(f => f.Name == name);
            if (at >= 0)
                fields[at] = (name, value);
            else
                fields.Add((name, value));
        }
        return "{" + string.Join(", ", fields.Where(f => f.Value is not null).Select(f => $"\"{f.Name}\": {f.Value}")) + "}";
    }

    [Fact]
    public void Defaults_when_optional_fields_are_absent()
    {
        var config = HfConfigReader.Read(Folder(Json()));
        Assert.Equal((6, 6, 8), (config.HeadCount, config.KvHeadCount, config.HeadDim));
        Assert.Equal(1e-5, config.RmsNormEps);
        Assert.Equal(10000.0, config.RopeTheta);
        Assert.False(config.TieWordEmbeddings);
        Assert.Equal(2048, config.MaxPositions);
        Assert.Null(config.BosTokenId);
        Assert.Empty(config.EosTokenIds);
    }

    [Fact]
    public void Top_level_theta_layer_norm_epsilon_and_eos_list()
    {
        var config = HfConfigReader.Read(Folder(Json(
            ("rope_theta", "500000.0"), ("layer_norm_epsilon", "3e-6"), ("eos_token_id", "[7, 9]"), ("bos_token_id", "5"),
            ("num_key_value_heads", "3"), ("head_dim", "12"), ("tie_word_embeddings", "true"),
            ("rope_parameters", "{\"rope_theta\": 1.0, \"rope_type\": \"default\"}"))));
        Assert.Equal(500000.0, config.RopeTheta);
        Assert.Equal(3e-6, config.RmsNormEps);
        Assert.Equal([7, 9], config.EosTokenIds);
        Assert.Equal(5, config.BosTokenId);
        Assert.Equal((3, 12), (config.KvHeadCount, config.HeadDim));
        Assert.True(config.TieWordEmbeddings);
    }

    [Fact]
    public void Rms_norm_eps_wins_over_layer_norm_epsilon()
    {
        var config = HfConfigReader.Read(Folder(Json(("layer_norm_epsilon", "3e-6"), ("rms_norm_eps", "2e-6"))));
        Assert.Equal(2e-6, config.RmsNormEps);
    }

    [Fact]
    public void Generation_config_wins_for_eos_and_bos()
    {
        var single = HfConfigReader.Read(Folder(Json(("eos_token_id", "[7, 9]"), ("bos_token_id", "5")), """{"eos_token_id": 11, "bos_token_id": 4}"""));
        Assert.Equal([11], single.EosTokenIds);
        Assert.Equal(4, single.BosTokenId);

        var list = HfConfigReader.Read(Folder(Json(("eos_token_id", "7")), """{"eos_token_id": [12, 13, 14]}"""));
        Assert.Equal([12, 13, 14], list.EosTokenIds);

        var fallback = HfConfigReader.Read(Folder(Json(("eos_token_id", "7"), ("bos_token_id", "3")), """{"eos_token_id": null, "do_sample": true}"""));
        Assert.Equal([7], fallback.EosTokenIds);
        Assert.Equal(3, fallback.BosTokenId);
    }

    [Theory]
    [InlineData("model_type")]
    [InlineData("vocab_size")]
    [InlineData("hidden_size")]
    [InlineData("num_hidden_layers")]
    public void Missing_required_field_names_config_json_and_the_field(string field)
    {
        string folder = Folder(Json((field, null)));

        var error = Assert.Throws<InvalidDataException>(() => HfConfigReader.Read(folder));

        Assert.Equal($"{Path.Combine(folder, "config.json")}: missing required field '{field}'", error.Message);
    }

    [Theory]
    [InlineData("vocab_size", "\"100\"", "field 'vocab_size' must be an integer")]
    [InlineData("vocab_size", "0", "field 'vocab_size' must be positive")]
    [InlineData("hidden_size", "64.5", "field 'hidden_size' must be an integer")]
    [InlineData("num_key_value_heads", "4", "num_attention_heads 6 is not a multiple of num_key_value_heads 4")]
    [InlineData("head_dim", "-8", "field 'head_dim' must not be negative")]
    [InlineData("rope_theta", "\"big\"", "field 'rope_theta' must be a finite number")]
    [InlineData("tie_word_embeddings", "1", "field 'tie_word_embeddings' must be true or false")]
    [InlineData("eos_token_id", "\"</s>\"", "field 'eos_token_id' must be an integer or a list of integers")]
    [InlineData("model_type", "7", "field 'model_type' must be a non-empty string")]
    public void Wrongly_typed_fields_are_errors(string field, string value, string reason)
    {
        string folder = Folder(Json((field, value)));
        var error = Assert.Throws<InvalidDataException>(() => HfConfigReader.Read(folder));
        Assert.Contains(Path.Combine(folder, "config.json"), error.Message);
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public void Malformed_json_names_the_file()
    {
        string folder = Folder("""{"model_type": "llama", "vocab_size": """);
        var error = Assert.Throws<InvalidDataException>(() => HfConfigReader.Read(folder));
        Assert.StartsWith($"{Path.Combine(folder, "config.json")}: not valid JSON", error.Message);

        string generationBad = Folder(Json(), "{ nope");
        var generationError = Assert.Throws<InvalidDataException>(() => HfConfigReader.Read(generationBad));
        Assert.StartsWith($"{Path.Combine(generationBad, "generation_config.json")}: not valid JSON", generationError.Message);
    }

    [Fact]
    public void Bare_python_infinity_and_nan_are_accepted()
    {
        var config = HfConfigReader.Read(Folder(Json(("time_step_limit", "[0.0, Infinity]"), ("x", "-Infinity"), ("y", "NaN"), ("s", "\"NaN \\\"Infinity\""))));
        var raw = config.Raw!.Value;
        Assert.Equal("Infinity", raw.GetProperty("time_step_limit")[1].GetProperty("__float__").GetString());
        Assert.Equal("-Infinity", raw.GetProperty("x").GetProperty("__float__").GetString());
        Assert.Equal("NaN", raw.GetProperty("y").GetProperty("__float__").GetString());
        Assert.Equal("NaN \"Infinity", raw.GetProperty("s").GetString());
        Assert.Equal(100, config.VocabSize);
    }

    [Fact]
    public void Missing_config_json_is_file_not_found_naming_it()
    {
        var error = Assert.Throws<FileNotFoundException>(() => HfConfigReader.Read(_temp.Root));
        Assert.Contains(Path.Combine(_temp.Root, "config.json"), error.Message);
    }
}
