using System.Text.Json.Nodes;
using Engine.Runtime.Tokenization;

namespace Engine.Tests.Tokenization;

/// <summary>Small hand-made tokenizer.json files whose expected ids can be worked out by hand.</summary>
internal static class TinyTokenizerJson
{
    /// <summary>
    /// Byte-level BPE with Llama 3's split pattern: printable ASCII, space and newline as single-byte tokens (ids =
    /// byte values), then the merged tokens in order (ids from 256), and added tokens from 300.
    /// </summary>
    public static JsonObject ByteLevel(string[] mergedTokens, JsonArray merges, JsonArray? addedTokens = null)
    {
        var vocab = new JsonObject();
        foreach (int b in Enumerable.Range(0x20, 0x7F - 0x20).Append(0x0A))
            vocab[ByteLevelAlphabet.Encode(((char)b).ToString())] = b;
        for (int i = 0; i < mergedTokens.Length; i++) vocab[mergedTokens[i]] = 256 + i;
        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = addedTokens ?? [],
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split",
                        ["pattern"] = new JsonObject { ["Regex"] = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+" },
                        ["behavior"] = "Isolated",
                        ["invert"] = false,
                    },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = false }),
            },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = merges },
        };
    }

    /// <summary>
    /// Llama 2's tokenizer.json shape: "▁" prepended and spaces replaced by the normalizer, no pre-tokenizer, byte
    /// fallback, and the Replace/ByteFallback/Fuse/Strip decoder. Ids: &lt;unk&gt; 0, &lt;s&gt; 1, &lt;/s&gt; 2,
    /// bytes 3..258, then "▁", "h", "i", "▁h", "▁hi" from 259.
    /// </summary>
    public static JsonObject SentencePieceStyle()
    {
        var vocab = new JsonObject { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        for (int b = 0; b < 256; b++) vocab[$"<0x{b:X2}>"] = 3 + b;
        string[] pieces = ["▁", "h", "i", "▁h", "▁hi"];
        for (int i = 0; i < pieces.Length; i++) vocab[pieces[i]] = 259 + i;
        return new JsonObject
        {
            ["added_tokens"] = new JsonArray(
                new JsonObject { ["id"] = 0, ["content"] = "<unk>", ["special"] = true },
                new JsonObject { ["id"] = 1, ["content"] = "<s>", ["special"] = true },
                new JsonObject { ["id"] = 2, ["content"] = "</s>", ["special"] = true }),
            ["normalizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["normalizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" },
                    new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁" }),
            },
            ["pre_tokenizer"] = null,
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(
                    new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<s>", ["type_id"] = 0 } },
                    new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
            },
            ["decoder"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["decoders"] = new JsonArray(
                    new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " " },
                    new JsonObject { ["type"] = "ByteFallback" },
                    new JsonObject { ["type"] = "Fuse" },
                    new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }),
            },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["unk_token"] = "<unk>",
                ["byte_fallback"] = true,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray("▁ h", "▁h i"),
            },
        };
    }

    public static TextTokenizer Load(JsonObject tokenizerJson, string? tokenizerConfig = null, string? generationConfig = null) =>
        TextTokenizer.FromBytes(TextTokenizer.TokenizerJsonKind, System.Text.Encoding.UTF8.GetBytes(tokenizerJson.ToJsonString()), tokenizerConfig, generationConfig);
}
