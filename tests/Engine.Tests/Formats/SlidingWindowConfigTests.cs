using Engine.Formats;
using Xunit;

namespace Engine.Tests.Formats;

/// <summary>The per-layer sliding window read from config.json, by the rules of transformers' configuration classes.</summary>
public sealed class SlidingWindowConfigTests
{
    private static ModelConfig Read(string modelType, int layers, string extra) =>
        HfConfigReader.FromJson($$"""
            {"model_type": "{{modelType}}", "vocab_size": 100, "hidden_size": 64, "num_hidden_layers": {{layers}},
             "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128{{(extra.Length == 0 ? "" : ", " + extra)}}}
            """, null, "test");

    private static int[] Windows(ModelConfig config) => Enumerable.Range(0, config.LayerCount).Select(config.SlidingWindow).ToArray();

    [Fact]
    public void Llama_has_no_window()
    {
        var config = Read("llama", 3, "");
        Assert.Empty(config.SlidingWindows);
        Assert.Equal([0, 0, 0], Windows(config));
        Assert.Throws<ArgumentOutOfRangeException>(() => config.SlidingWindow(3));
    }

    [Fact]
    public void Mistral_puts_sliding_window_on_every_layer_and_defaults_to_4096()
    {
        Assert.Equal([4096, 4096], Windows(Read("mistral", 2, "\"sliding_window\": 4096")));
        Assert.Equal([1000, 1000, 1000], Windows(Read("mistral", 3, "\"sliding_window\": 1000")));
        Assert.Equal([4096, 4096], Windows(Read("mistral", 2, "")));   // MistralConfig's default
        Assert.Empty(Read("mistral", 2, "\"sliding_window\": null").SlidingWindows);   // Mistral 7B v0.2 and later
        // MistralModel ignores layer_types: every layer keeps the window.
        Assert.Equal([512, 512], Windows(Read("mistral", 2, "\"sliding_window\": 512, \"layer_types\": [\"full_attention\", \"sliding_attention\"]")));
    }

    [Fact]
    public void Mixtral_has_a_window_only_when_sliding_window_is_set()
    {
        Assert.Empty(Read("mixtral", 2, "").SlidingWindows);
        Assert.Empty(Read("mixtral", 2, "\"sliding_window\": null").SlidingWindows);
        Assert.Equal([4096, 4096], Windows(Read("mixtral", 2, "\"sliding_window\": 4096")));
    }

    [Fact]
    public void Qwen2_needs_use_sliding_window_and_slides_from_max_window_layers_on()
    {
        // Qwen2-7B-Instruct's config: the window is off.
        Assert.Empty(Read("qwen2", 4, "\"use_sliding_window\": false, \"sliding_window\": 131072, \"max_window_layers\": 28").SlidingWindows);
        Assert.Empty(Read("qwen2", 4, "\"sliding_window\": 4096").SlidingWindows);   // use_sliding_window defaults to false
        Assert.Equal([0, 0, 32, 32], Windows(Read("qwen2", 4, "\"use_sliding_window\": true, \"sliding_window\": 32, \"max_window_layers\": 2")));
        Assert.Equal([16, 16, 16], Windows(Read("qwen2", 3, "\"use_sliding_window\": true, \"sliding_window\": 16, \"max_window_layers\": 0")));
        // max_window_layers defaults to 28, sliding_window to 4096.
        var deep = Read("qwen2_moe", 30, "\"use_sliding_window\": true");
        Assert.Equal(Enumerable.Repeat(0, 28).Concat([4096, 4096]), Windows(deep));
        Assert.Empty(Read("qwen2_moe", 4, "\"use_sliding_window\": true, \"sliding_window\": null, \"max_window_layers\": 1").SlidingWindows);
    }

    [Fact]
    public void Qwen_layer_types_choose_the_layers_when_present()
    {
        var config = Read("qwen3", 4, "\"use_sliding_window\": true, \"sliding_window\": 64, \"max_window_layers\": 0, " +
            "\"layer_types\": [\"full_attention\", \"sliding_attention\", \"full_attention\", \"sliding_attention\"]");
        Assert.Equal([0, 64, 0, 64], Windows(config));
        // The fixture written by transformers 5: layer_types listed, the window off.
        Assert.Empty(HfConfigReader.Read(TestPaths.Shared("fixtures", "hf-tiny", "qwen2")).SlidingWindows);
        // Without use_sliding_window the window is None, so sliding layers attend fully (as transformers' Qwen2Config).
        Assert.Empty(Read("qwen2", 2, "\"sliding_window\": 64, \"layer_types\": [\"sliding_attention\", \"sliding_attention\"]").SlidingWindows);
    }

    [Fact]
    public void Other_models_use_layer_types_with_sliding_window()
    {
        var config = Read("llama", 3, "\"sliding_window\": 8, \"layer_types\": [\"sliding_attention\", \"sliding_attention\", \"full_attention\"]");
        Assert.Equal([8, 8, 0], Windows(config));
        Assert.Empty(Read("llama", 2, "\"sliding_window\": 8").SlidingWindows);
    }

    [Fact]
    public void Multimodal_configs_read_the_text_model()
    {
        var config = HfConfigReader.FromJson("""
            {"model_type": "llava", "text_config": {"model_type": "mistral", "vocab_size": 100, "hidden_size": 64,
             "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "sliding_window": 256}}
            """, null, "test");
        Assert.Equal([256, 256], Windows(config));
    }

    [Fact]
    public void Bad_values_are_clear_errors()
    {
        Assert.Contains("sliding_window must be a positive integer", Assert.Throws<InvalidDataException>(() => Read("mistral", 2, "\"sliding_window\": 0")).Message);
        Assert.Contains("layer_types must list one type per layer (3)",
            Assert.Throws<InvalidDataException>(() => Read("llama", 3, "\"layer_types\": [\"full_attention\"]")).Message);
        Assert.Contains("layer type 'chunked_attention' is not supported",
            Assert.Throws<InvalidDataException>(() => Read("llama", 1, "\"layer_types\": [\"chunked_attention\"]")).Message);
        Assert.Contains("'use_sliding_window' must be true or false",
            Assert.Throws<InvalidDataException>(() => Read("qwen2", 1, "\"use_sliding_window\": 1")).Message);
    }
}
