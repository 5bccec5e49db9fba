namespace Engine.Runtime.Tokenization;

/// <summary>A stretch of the text to encode: either one added token, or plain text for the model.</summary>
internal readonly record struct TextSegment(string Text, AddedToken? Token, bool AtTextStart);

/// <summary>
/// Cuts text at added tokens: at each position the longest token that starts there wins, scanning left to right,
/// as Hugging Face's added-vocabulary splitter (and transformers.js) do. Special tokens take part only when asked:
/// user text must not be able to forge control tokens, while non-special added tokens are always matched.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, AddedToken[]> _allByFirstChar;
    private readonly Dictionary<char, AddedToken[]> _nonSpecialByFirstChar;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        var usable = tokens.Where(t => t.Content.Length > 0).ToArray();
        _allByFirstChar = IndexByFirstChar(usable);
        _nonSpecialByFirstChar = IndexByFirstChar(usable.Where(t => !t.Special));
    }

    public List<TextSegment> Split(string text, bool matchSpecial)
    {
        var candidates = matchSpecial ? _allByFirstChar : _nonSpecialByFirstChar;
        var segments = new List<TextSegment>();
        int textStart = 0;
        for (int i = 0; i < text.Length;)
        {
            var token = candidates.Count == 0 ? null : LongestAt(text, i, candidates);
            if (token is null)
            {
                i++;
                continue;
            }
            if (i > textStart)
                segments.Add(new TextSegment(text[textStart..i], null, textStart == 0));
            segments.Add(new TextSegment(token.Content, token, i == 0));
            i += token.Content.Length;
            textStart = i;
        }
        if (textStart < text.Length)
            segments.Add(new TextSegment(text[textStart..], null, textStart == 0));
        StripAroundTokens(segments);
        return segments;
    }

    private static AddedToken? LongestAt(string text, int position, Dictionary<char, AddedToken[]> candidates)
    {
        if (!candidates.TryGetValue(text[position], out var tokens)) return null;
        var rest = text.AsSpan(position);
        foreach (var token in tokens)
            if (rest.StartsWith(token.Content, StringComparison.Ordinal))
                return token;
        return null;
    }

    /// <summary>lstrip/rstrip: the whitespace beside such a token belongs to the token and is not encoded.</summary>
    private static void StripAroundTokens(List<TextSegment> segments)
    {
        for (int i = 0; i < segments.Count; i++)
        {
            if (segments[i].Token is not { } token) continue;
            if (token.StripLeft && i > 0 && segments[i - 1].Token is null)
                segments[i - 1] = segments[i - 1] with { Text = segments[i - 1].Text.TrimEnd() };
            if (token.StripRight && i + 1 < segments.Count && segments[i + 1].Token is null)
                segments[i + 1] = segments[i + 1] with { Text = segments[i + 1].Text.TrimStart() };
        }
        segments.RemoveAll(s => s.Token is null && s.Text.Length == 0);
    }

    /// <summary>Candidates per first character, longest first so the first hit is the longest match.</summary>
    private static Dictionary<char, AddedToken[]> IndexByFirstChar(IEnumerable<AddedToken> tokens) =>
        tokens.GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
}
