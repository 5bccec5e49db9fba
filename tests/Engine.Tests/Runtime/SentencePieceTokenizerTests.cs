using Engine.Runtime.Tokenization;
using Xunit;

namespace Engine.Tests.Runtime;

/// <summary>tinyprose-14m's SentencePiece tokenizer (BPE with byte fallback) through Microsoft.ML.Tokenizers.</summary>
public sealed class SentencePieceTokenizerTests
{
    private static TextTokenizer Tinyprose() => TextTokenizer.Load(TestPaths.Shared("models", "tinyprose-14m"))!;

    [Fact]
    public void Encodes_the_reference_prompt_to_the_reference_ids()
    {
        var tokenizer = Tinyprose();
        Assert.Equal([1, 348, 449, 1272, 621], tokenizer.Encode("The jury said", addBos: true));
        Assert.Equal(1, tokenizer.BosId);
        Assert.Contains(2, tokenizer.StopIds);
        Assert.Equal(4096, tokenizer.VocabSize);
    }

    [Theory]
    [InlineData("The jury said it did not believe the rumors.")]
    [InlineData("Numbers 1234567 and 3.14159, tabs\tand commas")]
    [InlineData("Ünïcödé, 日本語 and an emoji 🙂 need byte fallback")]
    [InlineData("line one\nline two")]
    public void Round_trips_and_streams_the_same_text(string text)
    {
        var tokenizer = Tinyprose();
        int[] ids = tokenizer.Encode(text, addBos: false);
        Assert.Equal(text, tokenizer.Decode(ids));
        var stream = tokenizer.CreateStreamingDecoder();
        string streamed = string.Concat(ids.Select(stream.Append)) + stream.Flush();
        Assert.Equal(text, streamed);
    }

    [Fact]
    public void Reads_the_chat_template_and_bos_setting_from_tokenizer_config()
    {
        string folder = Directory.CreateTempSubdirectory("engine-tokenizer-").FullName;
        try
        {
            File.Copy(Path.Combine(TestPaths.Shared("models", "tinyprose-14m"), "tokenizer.model"), Path.Combine(folder, "tokenizer.model"));
            File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"),
                """{"add_bos_token": false, "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}D"}]}""");
            var tokenizer = TextTokenizer.Load(folder)!;
            Assert.Equal("{{ bos_token }}D", tokenizer.ChatTemplate);
            Assert.False(tokenizer.AddBosByDefault);

            File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), "{\"chat_template\": ");
            var error = Assert.Throws<InvalidDataException>(() => TextTokenizer.Load(folder));
            Assert.Contains("tokenizer_config.json", error.Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
