using System.Text.Json;

namespace Engine.Runtime.Tokenization;

/// <summary>Reads fields of a JSON configuration file; every problem becomes an InvalidDataException naming the file.</summary>
internal sealed class JsonFile : IDisposable
{
    private readonly JsonDocument _document;

    private JsonFile(string label, JsonDocument document)
    {
        Label = label;
        _document = document;
    }

    /// <summary>The file's path, or its usual name when the JSON did not come from a file.</summary>
    public string Label { get; }
    public JsonElement Root => _document.RootElement;

    public static JsonFile Parse(ReadOnlyMemory<byte> json, string label)
    {
        if (json.Span.StartsWith("\uFEFF"u8)) json = json[3..];
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{label}: not valid JSON ({e.Message})", e);
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            var kind = document.RootElement.ValueKind;
            document.Dispose();
            throw new InvalidDataException($"{label}: expected a JSON object at the top level, found {kind}");
        }
        return new JsonFile(label, document);
    }

    public void Dispose() => _document.Dispose();

    public InvalidDataException Error(string problem) => new($"{Label}: {problem}");

    /// <summary>The member, or null when it is missing or JSON null.</summary>
    public static JsonElement? Member(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public string? OptionalString(JsonElement obj, string name) => Member(obj, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } value => value.GetString(),
        var value => throw Error($"'{name}' should be a string, found {value.Value.ValueKind}"),
    };

    public string RequiredString(JsonElement obj, string name) =>
        OptionalString(obj, name) ?? throw Error($"'{name}' is missing");

    public bool? OptionalBool(JsonElement obj, string name) => Member(obj, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        var value => throw Error($"'{name}' should be true or false, found {value.Value.ValueKind}"),
    };

    public int? OptionalInt(JsonElement obj, string name) => Member(obj, name) is { } value ? Int(value, name) : null;

    public int? OptionalTokenId(JsonElement obj, string name) => Member(obj, name) is { } value ? TokenId(value, name) : null;

    /// <summary>Token ids above this are refused: tables are sized by the largest id, and real vocabularies stay far below.</summary>
    public const int LargestTokenId = (1 << 24) - 1;

    /// <summary>A token id: an integer from 0 to <see cref="LargestTokenId"/>.</summary>
    public int TokenId(JsonElement value, string what)
    {
        int id = Int(value, what);
        return id is >= 0 and <= LargestTokenId ? id : throw Error($"'{what}' is {id}, not a token id (0 to {LargestTokenId})");
    }

    public int Int(JsonElement value, string what) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number)
            ? number
            : throw Error($"'{what}' should be a 32-bit integer, found {value.ValueKind} {value.GetRawText()}");

    /// <summary>A token id field that may hold one id or a list of them (eos_token_id).</summary>
    public IReadOnlyList<int> TokenIdOrList(JsonElement obj, string name) => Member(obj, name) switch
    {
        null => [],
        { ValueKind: JsonValueKind.Array } list => [.. list.EnumerateArray().Select(item => TokenId(item, name))],
        var value => [TokenId(value.Value, name)],
    };

    public JsonElement RequiredMember(JsonElement obj, string name, JsonValueKind kind) => Member(obj, name) switch
    {
        null => throw Error($"'{name}' is missing"),
        var value when value.Value.ValueKind == kind => value.Value,
        var value => throw Error($"'{name}' should be {kind}, found {value.Value.ValueKind}"),
    };
}
