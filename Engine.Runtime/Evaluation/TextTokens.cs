using Engine.Runtime.Tokenization;

namespace Engine.Runtime.Evaluation;

/// <summary>A text file as one token stream, the way perplexity and calibration read it: each non-empty line after a BOS token (when the tokenizer has one).</summary>
public static class TextTokens
{
    public static List<int> Read(string path, TextTokenizer tokenizer)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"text file not found: {path}");
        var tokens = new List<int>();
        foreach (string line in File.ReadLines(path))
        {
            if (line.Length == 0) continue;
            if (tokenizer.BosId is int bos) tokens.Add(bos);
            tokens.AddRange(tokenizer.Encode(line, addBos: false));
        }
        return tokens;
    }
}
