namespace Engine.Runtime.Tokenization;

/// <summary>bos_token_id and eos_token_id (one id or a list) from generation_config.json or config.json.</summary>
internal sealed record ConfiguredTokenIds(int? BosId, IReadOnlyList<int> EosIds)
{
    public static readonly ConfiguredTokenIds Empty = new(null, []);

    /// <exception cref="InvalidDataException">Malformed JSON or ids that are not integers.</exception>
    public static ConfiguredTokenIds Parse(ReadOnlyMemory<byte> json, string fileLabel)
    {
        using var file = JsonFile.Parse(json, fileLabel);
        // Multimodal configs keep the language model's ids under text_config.
        var holder = JsonFile.Member(file.Root, "bos_token_id") is null && JsonFile.Member(file.Root, "eos_token_id") is null
            && JsonFile.Member(file.Root, "text_config") is { ValueKind: System.Text.Json.JsonValueKind.Object } text ? text : file.Root;
        return new ConfiguredTokenIds(file.OptionalTokenId(holder, "bos_token_id"), file.TokenIdOrList(holder, "eos_token_id"));
    }
}
