namespace Engine.Runtime.Tokenization;

/// <summary>
/// The model-specific half of a tokenizer (SentencePiece, or a Hugging Face tokenizer.json pipeline): it encodes
/// plain text (added tokens are already cut out by <see cref="AddedTokenMatcher"/>) and decodes ids to text.
/// </summary>
internal interface ITokenModel
{
    /// <summary>One past the largest id, added tokens included.</summary>
    int VocabSize { get; }

    /// <summary>
    /// Tokens matched whole: the file's own (SentencePiece control pieces, tokenizer.json added_tokens) and those
    /// of tokenizer_config.json's added_tokens_decoder that the file lacks.
    /// </summary>
    IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>The file's own BOS: SentencePiece's control piece, or the token tokenizer.json's post-processor puts first.</summary>
    int? BosId { get; }

    /// <summary>The file's own EOS (SentencePiece's control piece); tokenizer.json files leave it to the configs.</summary>
    int? EosId { get; }

    /// <summary>Whether texts are encoded with BOS in front unless tokenizer_config.json says otherwise.</summary>
    bool ExpectsBos { get; }

    int? IdOf(string token);

    /// <summary>The token's piece as the vocabulary stores it (▁ for spaces, byte-level characters), or null.</summary>
    string? TokenText(int id);

    /// <summary>Appends the ids of <paramref name="text"/>; <paramref name="atTextStart"/> is false after an added token.</summary>
    void Encode(string text, bool atTextStart, List<int> ids);

    /// <summary>Text of a run of ids from which the caller has removed special tokens; unknown ids are ignored.</summary>
    string Decode(IReadOnlyList<int> ids);
}
