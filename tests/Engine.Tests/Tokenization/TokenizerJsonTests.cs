using System.Text.Json.Nodes;
using Engine.Runtime.Tokenization;
using Xunit;

namespace Engine.Tests.Tokenization;

/// <summary>tokenizer.json loading: the real Qwen3 and Llama 3 files' settings, and small hand-made files for the pipeline steps.</summary>
public sealed class TokenizerJsonTests
{
    private static readonly Lazy<TextTokenizer> Qwen3 = new(() => TextTokenizer.Load(NodeReferenceEncoder.ModelFolder("qwen3"))!);
    private static readonly Lazy<TextTokenizer> Llama3 = new(() => TextTokenizer.Load(NodeReferenceEncoder.ModelFolder("llama3"))!);

    [Fact]
    public void Reads_qwen3_settings()
    {
        var tokenizer = Qwen3.Value;
        Assert.Equal(151669, tokenizer.VocabSize);
        Assert.Null(tokenizer.BosId);
        Assert.Null(tokenizer.BosToken);
        Assert.Equal("<|im_end|>", tokenizer.EosToken);
        Assert.False(tokenizer.AddBosByDefault);
        Assert.Equal([151643, 151645], tokenizer.StopIds.Order());
        Assert.Contains("<|im_start|>", tokenizer.ChatTemplate);
        Assert.Equal([9707, 1879], tokenizer.Encode("Hello world", addBos: true));
    }

    [Fact]
    public void Reads_llama3_settings()
    {
        var tokenizer = Llama3.Value;
        Assert.Equal(128256, tokenizer.VocabSize);
        Assert.Equal(128000, tokenizer.BosId);
        Assert.Equal("<|begin_of_text|>", tokenizer.BosToken);
        Assert.Equal("<|end_of_text|>", tokenizer.EosToken);
        // This file's post-processor is plain ByteLevel and its tokenizer_config has no add_bos_token.
        Assert.False(tokenizer.AddBosByDefault);
        Assert.Equal([128001, 128009], tokenizer.StopIds.Order());
        Assert.Equal([128000, 9906, 1917], tokenizer.Encode("Hello world", addBos: true));
        Assert.Equal("ĠHello", tokenizer.TokenText(22691));
        Assert.Equal("<|eot_id|>", tokenizer.TokenText(128009));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.TokenText(128256));
    }

    [Fact]
    public void Special_tokens_are_parsed_only_when_asked_and_skipped_when_decoding()
    {
        var tokenizer = Qwen3.Value;
        Assert.Equal([151644, 872, 198, 9707, 151645], tokenizer.Encode("<|im_start|>user\nHello<|im_end|>", addBos: false, parseSpecial: true));
        int[] plain = tokenizer.Encode("<|im_start|>user", addBos: false);
        Assert.DoesNotContain(151644, plain);
        Assert.Equal("<|im_start|>user", tokenizer.Decode(plain));
        Assert.Equal("user\nHello", tokenizer.Decode([151644, 872, 198, 9707, 151645]));

        // <think> is an added token but not a special one: always matched, and kept when decoding.
        Assert.Equal([151667], tokenizer.Encode("<think>", addBos: false));
        Assert.Equal("<think>ok", tokenizer.Decode([151667, 562]));
    }

    [Fact]
    public void Streaming_holds_back_a_character_split_across_byte_level_tokens()
    {
        var tokenizer = Llama3.Value;
        int[] ids = tokenizer.Encode("a𠀀", addBos: false);
        Assert.True(ids.Length >= 3, $"expected 𠀀 to take several byte tokens, got [{string.Join(", ", ids)}]");
        var stream = tokenizer.CreateStreamingDecoder();
        string[] pieces = [.. ids.Select(stream.Append)];
        Assert.Equal(["a", .. Enumerable.Repeat("", ids.Length - 2), "𠀀"], pieces);
        Assert.Equal("", stream.Flush());
    }

    [Fact]
    public void Prefers_tokenizer_json_to_tokenizer_model_and_returns_null_without_either()
    {
        string folder = Directory.CreateTempSubdirectory("engine-tokenizer-").FullName;
        try
        {
            Assert.Null(TextTokenizer.Load(folder));
            File.Copy(Path.Combine(TestPaths.Shared("models", "tinyprose-14m"), "tokenizer.model"), Path.Combine(folder, "tokenizer.model"));
            Assert.Equal(4096, TextTokenizer.Load(folder)!.VocabSize);
            File.Copy(Path.Combine(NodeReferenceEncoder.ModelFolder("qwen3"), "tokenizer.json"), Path.Combine(folder, "tokenizer.json"));
            Assert.Equal(151669, TextTokenizer.Load(folder)!.VocabSize);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Reads_ids_from_generation_config_and_config_json()
    {
        string folder = Directory.CreateTempSubdirectory("engine-tokenizer-").FullName;
        try
        {
            File.Copy(Path.Combine(NodeReferenceEncoder.ModelFolder("qwen3"), "tokenizer.json"), Path.Combine(folder, "tokenizer.json"));
            File.WriteAllText(Path.Combine(folder, "config.json"), """{"bos_token_id": 151643, "eos_token_id": 151643}""");
            File.WriteAllText(Path.Combine(folder, "generation_config.json"), """{"eos_token_id": [151645, 151643, 151662]}""");
            File.WriteAllText(Path.Combine(folder, "chat_template.jinja"), "{{ messages }}");
            var tokenizer = TextTokenizer.Load(folder)!;
            Assert.Equal(151643, tokenizer.BosId);
            Assert.Equal("<|endoftext|>", tokenizer.BosToken);
            Assert.Equal("<|im_end|>", tokenizer.EosToken);
            Assert.Equal([151643, 151645, 151662], tokenizer.StopIds.Order());
            Assert.Equal("{{ messages }}", tokenizer.ChatTemplate);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void From_bytes_matches_loading_the_folder()
    {
        string folder = NodeReferenceEncoder.ModelFolder("llama3");
        var fromBytes = TextTokenizer.FromBytes(TextTokenizer.TokenizerJsonKind, File.ReadAllBytes(Path.Combine(folder, "tokenizer.json")),
            File.ReadAllText(Path.Combine(folder, "tokenizer_config.json")), """{"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}""");
        var loaded = Llama3.Value;
        Assert.Equal(loaded.Encode("Streams of <|eot_id|> text", addBos: true, parseSpecial: true), fromBytes.Encode("Streams of <|eot_id|> text", addBos: true, parseSpecial: true));
        Assert.Equal(loaded.ChatTemplate, fromBytes.ChatTemplate);
        Assert.Equal([128001, 128008, 128009], fromBytes.StopIds.Order());

        var sentencePiece = TextTokenizer.FromBytes(TextTokenizer.SentencePieceKind, File.ReadAllBytes(Path.Combine(TestPaths.Shared("models", "tinyprose-14m"), "tokenizer.model")),
            null, """{"bos_token_id": 1, "eos_token_id": [2, 5]}""");
        Assert.Equal([1, 348, 449, 1272, 621], sentencePiece.Encode("The jury said", addBos: true));
        Assert.Equal([2, 5], sentencePiece.StopIds.Order());
        Assert.Throws<ArgumentException>(() => TextTokenizer.FromBytes("gguf", [], null, null));
    }

    [Fact]
    public void Applies_merges_by_rank_and_reads_both_merge_formats()
    {
        // "abc": the pair with the lower rank merges first, whichever side it is on.
        var bcFirst = TinyTokenizerJson.Load(TinyTokenizerJson.ByteLevel(["bc", "ab"], [new JsonArray("b", "c"), new JsonArray("a", "b")]));
        Assert.Equal(['a', 256], bcFirst.Encode("abc", addBos: false));
        var abFirst = TinyTokenizerJson.Load(TinyTokenizerJson.ByteLevel(["bc", "ab"], ["a b", "b c"]));
        Assert.Equal([257, 'c'], abFirst.Encode("abc", addBos: false));
        // Equal ranks: the leftmost pair first ("aaa" -> "aa" + "a").
        var leftmost = TinyTokenizerJson.Load(TinyTokenizerJson.ByteLevel(["aa"], ["a a"]));
        Assert.Equal([256, 'a'], leftmost.Encode("aaa", addBos: false));
        Assert.Equal("aaa a", leftmost.Decode(leftmost.Encode("aaa a", addBos: false)));
    }

    [Fact]
    public void Ignore_merges_keeps_a_piece_that_is_itself_a_token()
    {
        // "abc" is in the vocabulary but no merge produces it from "ab" + "c".
        var json = TinyTokenizerJson.ByteLevel(["ab", "abc"], ["a b"]);
        Assert.Equal([256, 'c'], TinyTokenizerJson.Load(json).Encode("abc", addBos: false));
        json["model"]!["ignore_merges"] = true;
        Assert.Equal([257], TinyTokenizerJson.Load(json).Encode("abc", addBos: false));
    }

    [Fact]
    public void A_template_post_processor_with_a_leading_special_token_means_bos_by_default()
    {
        var json = TinyTokenizerJson.ByteLevel([], [], [new JsonObject { ["id"] = 300, ["content"] = "<|begin_of_text|>", ["special"] = true }]);
        json["post_processor"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["processors"] = new JsonArray(
                new JsonObject { ["type"] = "ByteLevel" },
                new JsonObject
                {
                    ["type"] = "TemplateProcessing",
                    ["single"] = new JsonArray(
                        new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<|begin_of_text|>", ["type_id"] = 0 } },
                        new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
                }),
        };
        var tokenizer = TinyTokenizerJson.Load(json);
        Assert.True(tokenizer.AddBosByDefault);
        Assert.Equal(300, tokenizer.BosId);
        Assert.Equal("<|begin_of_text|>", tokenizer.BosToken);
        Assert.Equal([300, 'h', 'i'], tokenizer.Encode("hi", addBos: tokenizer.AddBosByDefault));
        Assert.False(TinyTokenizerJson.Load(json, """{"add_bos_token": false}""").AddBosByDefault);
    }

    [Fact]
    public void Runs_a_sentencepiece_style_file_with_byte_fallback()
    {
        var tokenizer = TinyTokenizerJson.Load(TinyTokenizerJson.SentencePieceStyle());
        Assert.True(tokenizer.AddBosByDefault);
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal([263, 263], tokenizer.Encode("hi hi", addBos: false));
        int[] ids = tokenizer.Encode("hi 日", addBos: true);
        Assert.Equal([1, 263, 259, 3 + 0xE6, 3 + 0x97, 3 + 0xA5], ids);
        Assert.Equal("hi 日", tokenizer.Decode(ids));
        var stream = tokenizer.CreateStreamingDecoder();
        Assert.Equal(["", "hi", " ", "", "", "日"], ids.Select(stream.Append));
        // Each stretch between special tokens gets its own "▁", as Hugging Face's Prepend normalizer does.
        Assert.Equal([1, 263, 2, 263], tokenizer.Encode("<s>hi</s>hi", addBos: false, parseSpecial: true));
    }

    [Fact]
    public void Metaspace_prepends_only_at_the_start_of_the_text_with_the_first_scheme()
    {
        var json = TinyTokenizerJson.SentencePieceStyle();
        json["normalizer"] = null;
        json["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = true };
        json["decoder"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first" };
        var tokenizer = TinyTokenizerJson.Load(json);
        Assert.Equal([263, 263], tokenizer.Encode("hi hi", addBos: false));
        Assert.Equal([1, 260, 261], tokenizer.Encode("<s>hi", addBos: false, parseSpecial: true));
        Assert.Equal("hi hi", tokenizer.Decode([263, 263]));
    }

    [Fact]
    public void Added_tokens_with_lstrip_take_the_space_before_them()
    {
        var json = TinyTokenizerJson.ByteLevel([], [], [new JsonObject { ["id"] = 300, ["content"] = "<mask>", ["special"] = true, ["lstrip"] = true }]);
        var tokenizer = TinyTokenizerJson.Load(json);
        Assert.Equal(['a', 300, ByteLevelId(' '), 'b'], tokenizer.Encode("a  <mask> b", addBos: false, parseSpecial: true));
    }

    [Theory]
    [InlineData("WordPiece", "tokenizer model type 'WordPiece' is not supported")]
    [InlineData("Unigram", "tokenizer model type 'Unigram' is not supported")]
    public void Rejects_model_types_other_than_bpe(string type, string message)
    {
        var json = TinyTokenizerJson.ByteLevel([], []);
        json["model"]!["type"] = type;
        var error = Assert.Throws<InvalidDataException>(() => TinyTokenizerJson.Load(json));
        Assert.StartsWith("tokenizer.json: ", error.Message);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void Names_the_file_and_the_problem_in_errors()
    {
        var json = TinyTokenizerJson.ByteLevel([], []);
        json["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" };
        Assert.Contains("pre_tokenizer type 'BertPreTokenizer' is not supported", Assert.Throws<InvalidDataException>(() => TinyTokenizerJson.Load(json)).Message);

        var badMerge = TinyTokenizerJson.ByteLevel([], ["a b"]);
        Assert.Contains("merge 0 uses 'ab', which is not in the vocabulary", Assert.Throws<InvalidDataException>(() => TinyTokenizerJson.Load(badMerge)).Message);

        var badPattern = TinyTokenizerJson.ByteLevel([], []);
        badPattern["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"] = new JsonObject { ["Regex"] = "(unclosed" };
        Assert.Contains("pattern '(unclosed' is not a regular expression", Assert.Throws<InvalidDataException>(() => TinyTokenizerJson.Load(badPattern)).Message);

        var good = TinyTokenizerJson.ByteLevel([], []);
        Assert.StartsWith("tokenizer_config.json: not valid JSON", Assert.Throws<InvalidDataException>(() => TinyTokenizerJson.Load(good, "{\"chat_template\": ")).Message);
        Assert.StartsWith("generation_config.json: 'eos_token_id' should be a 32-bit integer", Assert.Throws<InvalidDataException>(() => TinyTokenizerJson.Load(good, null, """{"eos_token_id": ["x"]}""")).Message);
        Assert.StartsWith("tokenizer.json: not valid JSON", Assert.Throws<InvalidDataException>(() => TextTokenizer.FromBytes(TextTokenizer.TokenizerJsonKind, "{"u8.ToArray(), null, null)).Message);
        Assert.StartsWith("tokenizer.model: not a usable SentencePiece model", Assert.Throws<InvalidDataException>(() => TextTokenizer.FromBytes(TextTokenizer.SentencePieceKind, [1, 2, 3, 4, 5], null, null)).Message);
    }

    [Fact]
    public void Errors_from_a_folder_name_the_file_path()
    {
        string folder = Directory.CreateTempSubdirectory("engine-tokenizer-").FullName;
        try
        {
            var json = TinyTokenizerJson.ByteLevel([], []);
            json["model"]!["type"] = "WordPiece";
            File.WriteAllText(Path.Combine(folder, "tokenizer.json"), json.ToJsonString());
            var error = Assert.Throws<InvalidDataException>(() => TextTokenizer.Load(folder));
            Assert.StartsWith(Path.Combine(folder, "tokenizer.json") + ": tokenizer model type 'WordPiece'", error.Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Reads_chat_template_lists_and_token_objects_from_tokenizer_config()
    {
        var config = """
            {"bos_token": {"content": "<s>", "__type": "AddedToken"}, "eos_token": "</s>", "add_bos_token": false,
             "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
             "added_tokens_decoder": {"300": {"content": "<|im_start|>", "special": true}, "301": {"content": "<tool>", "special": false}}}
            """;
        var tokenizer = TinyTokenizerJson.Load(TinyTokenizerJson.SentencePieceStyle(), config);
        Assert.Equal("<s>", tokenizer.BosToken);
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal("</s>", tokenizer.EosToken);
        Assert.False(tokenizer.AddBosByDefault);
        Assert.Equal("D", tokenizer.ChatTemplate);
        Assert.Equal(302, tokenizer.VocabSize);
        Assert.Equal([300, 263, 301], tokenizer.Encode("<|im_start|>hi<tool>", addBos: false, parseSpecial: true));
        Assert.Equal("hi<tool>", tokenizer.Decode([300, 263, 301]));
    }

    private static int ByteLevelId(char c) => c;
}
