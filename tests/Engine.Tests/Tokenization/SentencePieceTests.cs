using System.Text.RegularExpressions;
using Engine.Runtime.Tokenization;
using Xunit;

namespace Engine.Tests.Tokenization;

/// <summary>tinyprose-14m's SentencePiece tokenizer.model (BPE with byte fallback, remove_extra_whitespaces on).</summary>
public sealed class SentencePieceTests
{
    private static readonly Lazy<TextTokenizer> Tinyprose = new(() => TextTokenizer.Load(TestPaths.Shared("models", "tinyprose-14m"))!);

    [Fact]
    public void Encodes_the_reference_prompt_and_reads_the_special_tokens()
    {
        var tokenizer = Tinyprose.Value;
        Assert.Equal([1, 348, 449, 1272, 621], tokenizer.Encode("The jury said", addBos: true));
        Assert.Equal([348, 449, 1272, 621], tokenizer.Encode("The jury said", addBos: false));
        Assert.Equal(4096, tokenizer.VocabSize);
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal("<s>", tokenizer.BosToken);
        Assert.Equal("</s>", tokenizer.EosToken);
        Assert.True(tokenizer.AddBosByDefault);
        Assert.Equal([2], tokenizer.StopIds.Order());
        Assert.Null(tokenizer.ChatTemplate);
        Assert.Equal("▁The", tokenizer.TokenText(348));
        Assert.Equal("<0x0A>", tokenizer.TokenText(13));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.TokenText(4096));
    }

    [Theory]
    [InlineData("a", "▁a")]
    [InlineData(" x ", "▁ x")]
    [InlineData("?", "▁ ?")]
    [InlineData("I", "▁I")]
    public void Encodes_text_with_a_single_character(string text, string pieces)
    {
        // ML.Tokenizers 2.0.1's own normalizer turns these into nothing; SentencePiece keeps the character.
        var tokenizer = Tinyprose.Value;
        Assert.Equal(pieces, string.Join(" ", tokenizer.Encode(text, addBos: false).Select(tokenizer.TokenText)));
    }

    [Theory]
    [InlineData("  two  spaces  ", "two spaces")]
    [InlineData("a   b", "a b")]
    [InlineData("   ", "")]
    [InlineData("tab\t\tkept\n\nnewlines kept", "tab\t\tkept\n\nnewlines kept")]
    public void Removes_extra_spaces_as_the_model_asks(string text, string decoded)
    {
        var tokenizer = Tinyprose.Value;
        int[] ids = tokenizer.Encode(text, addBos: false);
        Assert.Equal(decoded, tokenizer.Decode(ids));
        Assert.Equal(tokenizer.Encode(decoded, addBos: false), ids);
    }

    [Fact]
    public void Round_trips_and_streams_varied_text()
    {
        var tokenizer = Tinyprose.Value;
        foreach (string text in TokenizerTestStrings.All())
        {
            int[] ids = tokenizer.Encode(text, addBos: false);
            // SentencePiece trims spaces at both ends and collapses runs of spaces (remove_extra_whitespaces).
            string expected = Regex.Replace(text.Trim(' '), " {2,}", " ");
            Assert.True(tokenizer.Decode(ids) == expected, $"{Json(text)} decoded as {Json(tokenizer.Decode(ids))}");

            var stream = tokenizer.CreateStreamingDecoder();
            string streamed = string.Concat(ids.Select(stream.Append)) + stream.Flush();
            Assert.True(streamed == expected, $"{Json(text)} streamed as {Json(streamed)}");
        }
    }

    [Fact]
    public void Streaming_holds_back_partial_characters_and_starts_without_a_space_after_bos()
    {
        var tokenizer = Tinyprose.Value;
        int[] ids = tokenizer.Encode("日 The", addBos: true);
        Assert.Equal(["<s>", "▁", "<0xE6>", "<0x97>", "<0xA5>", "▁The"], ids.Select(tokenizer.TokenText));
        var stream = tokenizer.CreateStreamingDecoder();
        Assert.Equal(["", "", "", "", "日", " The"], ids.Select(stream.Append));
        Assert.Equal("", stream.Flush());

        var fresh = tokenizer.CreateStreamingDecoder();
        Assert.Equal(["", "The", " j", "ury"], tokenizer.Encode("The jury", addBos: true).Select(fresh.Append));
    }

    [Fact]
    public void Flush_returns_an_incomplete_character_as_a_replacement()
    {
        var tokenizer = Tinyprose.Value;
        var stream = tokenizer.CreateStreamingDecoder();
        Assert.Equal("The", stream.Append(348));
        Assert.Equal("", stream.Append(233)); // <0xE6>, the first of three bytes
        Assert.Equal("\uFFFD", stream.Flush());
    }

    [Fact]
    public void Control_tokens_in_text_are_plain_text_unless_special_parsing_is_asked()
    {
        var tokenizer = Tinyprose.Value;
        int[] plain = tokenizer.Encode("<s>Hi</s>", addBos: false);
        Assert.DoesNotContain(1, plain);
        Assert.Equal("<s>Hi</s>", tokenizer.Decode(plain));

        int[] parsed = tokenizer.Encode("<s>Hi</s>", addBos: false, parseSpecial: true);
        Assert.Equal(1, parsed[0]);
        Assert.Equal(2, parsed[^1]);
        Assert.Equal(tokenizer.Encode("Hi", addBos: false), parsed[1..^1]);
        Assert.Equal("Hi", tokenizer.Decode(parsed));
    }

    private static string Json(string text) => System.Text.Json.JsonSerializer.Serialize(text);
}
