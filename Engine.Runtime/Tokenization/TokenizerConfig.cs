using System.Globalization;
using System.Text.Json;

namespace Engine.Runtime.Tokenization;

/// <summary>What tokenizer_config.json says: BOS/EOS text, add_bos_token, the chat template and added tokens.</summary>
internal sealed record TokenizerConfig(string? BosToken, string? EosToken, bool? AddBosToken, string? ChatTemplate, IReadOnlyList<AddedToken> AddedTokens)
{
    public static readonly TokenizerConfig Empty = new(null, null, null, null, []);

    /// <exception cref="InvalidDataException">Malformed JSON or a field of the wrong shape.</exception>
    public static TokenizerConfig Parse(ReadOnlyMemory<byte> json, string fileLabel)
    {
        using var file = JsonFile.Parse(json, fileLabel);
        var root = file.Root;
        return new TokenizerConfig(
            TokenContent(root, "bos_token", file),
            TokenContent(root, "eos_token", file),
            file.OptionalBool(root, "add_bos_token"),
            JsonFile.Member(root, "chat_template") is { } template ? TemplateText(template, file) : null,
            JsonFile.Member(root, "added_tokens_decoder") is { } decoder ? ParseAddedTokens(decoder, file) : []);
    }

    /// <summary>A special token is written as its text, or as an AddedToken object with a "content" member.</summary>
    private static string? TokenContent(JsonElement root, string name, JsonFile file) => JsonFile.Member(root, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } text => text.GetString(),
        { ValueKind: JsonValueKind.Object } token => file.RequiredString(token, "content"),
        var other => throw file.Error($"'{name}' should be a string or an object with 'content', found {other.Value.ValueKind}"),
    };

    /// <summary>A chat_template is a string, or a list of named templates of which "default" (else the first) is used.</summary>
    private static string TemplateText(JsonElement template, JsonFile file)
    {
        if (template.ValueKind == JsonValueKind.String) return template.GetString()!;
        if (template.ValueKind != JsonValueKind.Array || template.GetArrayLength() == 0)
            throw file.Error($"'chat_template' should be a string or a non-empty list of {{name, template}}, found {template.ValueKind}");
        var named = template.EnumerateArray()
            .Select(entry => (Name: file.OptionalString(entry, "name"), Template: file.RequiredString(entry, "template")))
            .ToList();
        return named.Where(entry => entry.Name == "default").Select(entry => entry.Template).FirstOrDefault() ?? named[0].Template;
    }

    /// <summary>added_tokens_decoder: {"128000": {"content": "&lt;|begin_of_text|&gt;", "special": true, ...}, ...}.</summary>
    private static List<AddedToken> ParseAddedTokens(JsonElement decoder, JsonFile file)
    {
        if (decoder.ValueKind != JsonValueKind.Object) throw file.Error($"'added_tokens_decoder' should be an object, found {decoder.ValueKind}");
        var tokens = new List<AddedToken>();
        foreach (var entry in decoder.EnumerateObject())
        {
            if (!int.TryParse(entry.Name, NumberStyles.None, CultureInfo.InvariantCulture, out int id) || id > JsonFile.LargestTokenId)
                throw file.Error($"added_tokens_decoder key '{entry.Name}' is not a token id (0 to {JsonFile.LargestTokenId})");
            tokens.Add(new AddedToken(id, file.RequiredString(entry.Value, "content"), file.OptionalBool(entry.Value, "special") ?? false,
                file.OptionalBool(entry.Value, "lstrip") ?? false, file.OptionalBool(entry.Value, "rstrip") ?? false));
        }
        return tokens;
    }
}
