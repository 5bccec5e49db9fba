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
}
