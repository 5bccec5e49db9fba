namespace Engine.Tests.Tokenization;

/// <summary>
/// A fixed, varied corpus for comparing tokenizers: prose, contractions, numbers, whitespace, code, punctuation,
/// many scripts, emoji, characters outside the BMP, decomposed accents, chat markers, and deterministic mixes of them.
/// </summary>
internal static class TokenizerTestStrings
{
    public static readonly string[] Fragments =
    [
        // prose and contractions
        "Hello world", "The quick brown fox jumps over the lazy dog.", "don't", "I'm", "you're", "they'll", "we've",
        "she'd", "It's", "DON'T SHOUT", "I'M HERE", "'s", "rock 'n' roll", "O'Neil's", "''quoted''", "can't won't shan't",
        // numbers
        "1", "12", "123", "1234", "1234567890123", "3.14159", "1,000,000", "-42", "0x1F3A", "2024-01-31", "v1.2.3",
        "١٢٣٤", "１２３", "x² + y³", "Ⅻ and ½", "$19.99", "50%",
        // whitespace
        "a  b", "a   b    c", "  leading", "trailing  ", "\t\ttabs\t", "line one\nline two", "\n\n\n", "a\r\nb",
        " \n ", "no\u00A0break", "wide\u3000space", " \t \n\t", "    four", "end\n", "\n",
        // code
        "def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}", "<div class=\"x\">Hi</div>",
        "SELECT * FROM t WHERE id = 1;", "{\"key\": [1, 2.5, null, true]}", "if (a != b && c >= d) return -1;",
        "console.log(`${name}`);", "#include <stdio.h>", "x => x?.y ?? z", "  }\n}\n",
        // punctuation runs
        "!!!", "?!?!", "...", "…", "—", "–", "«guillemets»", "“curly” ‘quotes’", "$$$", "@#%^&*()", "::", "->", "=>",
        "!==", "////", "---", "***bold***", "(a)[b]{c}",
        // scripts
        "café", "naïve", "Ångström", "Zürich", "cafe\u0301", "A\u030Angstro\u0308m", "ﬁne ligature", "Ελληνικά",
        "Привет, мир!", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "こんにちは世界", "你好，世界！",
        "안녕하세요 세계", "\u1100\u1161\u11A8 jamo", "Tiếng Việt", "ქართული", "Հայերեն",
        // emoji and outside the BMP
        "👋🌍", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "👍🏽", "❤️", "🙂 ok", "𝐀𝐁𝐂 𝟏𝟐𝟑𝟒", "𠀀𠀁 ext-B", "𐌰𐌱𐌲 Gothic", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        // mixed
        "Hello世界123", "abc𝟏𝟐𝟑𝟒def", "日本語とEnglishの mix", "emoji🙂in😀words", "tab\tand  space\n\nnew",
        // chat markers of both families (each tokenizer matches its own as special tokens)
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<think>\nreasoning\n</think>\n\nanswer", "<|endoftext|>", "text<|im_end|>more", "< |im_start| >",
        // edges
        "", " ", "a", "  ", "\t",
    ];

    private static readonly string[] Joins = ["", " ", "  ", "\n", "\t", ", ", " - ", "\n\n", "'", "0"];

    /// <summary>The fragments, then fragment pairs chosen by fixed strides with varied joins: a few hundred strings.</summary>
    public static IReadOnlyList<string> All()
    {
        var texts = new List<string>(Fragments);
        for (int i = 0; i < 240; i++)
        {
            string first = Fragments[i * 7 % Fragments.Length], second = Fragments[(i * 13 + 5) % Fragments.Length];
            texts.Add(first + Joins[i % Joins.Length] + second);
        }
        return texts;
    }
}
