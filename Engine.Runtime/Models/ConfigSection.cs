using System.Globalization;
using System.Text.Json;
using Engine.Formats;

namespace Engine.Runtime.Models;

/// <summary>
/// Typed reads of one object of a config.json (a model's <c>vision_config</c>, say), with errors that name the field.
/// <paramref name="where"/> says which object it is ("config.json vision_config").
/// </summary>
internal readonly record struct ConfigSection(JsonElement Element, string Where)
{
    /// <summary>The nested object <paramref name="name"/>; a missing or non-object field is an error.</summary>
    public static ConfigSection Of(JsonElement? root, string name)
    {
        if (root is { ValueKind: JsonValueKind.Object } r && r.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Object)
            return new ConfigSection(value, $"config.json {name}");
        throw new InvalidDataException($"config.json: missing object '{name}'");
    }

    /// <summary>The top level of a model's config.json.</summary>
    public static ConfigSection Root(ModelConfig config) =>
        new(config.Raw ?? throw new InvalidDataException($"{config.Architecture}: the model needs its config.json fields"), "config.json");

    public JsonElement? Find(string name) =>
        Element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public int Int(string name, int? fallback = null) => Find(name) switch
    {
        { ValueKind: JsonValueKind.Number } v when v.TryGetInt32(out int i) => i,
        null when fallback is int f => f,
        null => throw new InvalidDataException($"{Where}: missing required field '{name}'"),
        { } v => throw new InvalidDataException($"{Where}: field '{name}' must be an integer, found {v.GetRawText()}"),
    };

    /// <summary>An integer field, or null when the config does not have it.</summary>
    public int? OptionalInt(string name) => Find(name) is null ? null : Int(name);

    public int Positive(string name, int? fallback = null)
    {
        int value = Int(name, fallback);
        return value > 0 ? value : throw new InvalidDataException($"{Where}: field '{name}' must be positive, found {value}");
    }

    public double Double(string name, double fallback) => Find(name) is { } value ? Real(name, value) : fallback;

    /// <summary>A [low, high] pair of numbers.</summary>
    public (double Low, double High) Range(string name, (double, double) fallback)
    {
        if (Find(name) is not { } value) return fallback;
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() != 2)
            throw new InvalidDataException($"{Where}: field '{name}' must be a pair of numbers, found {value.GetRawText()}");
        return (Real(name, value[0]), Real(name, value[1]));
    }

    /// <summary>A number; transformers writes non-finite ones as {"__float__": "Infinity"}.</summary>
    private double Real(string name, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double number)) return number;
        if (value.ValueKind == JsonValueKind.Object && value.TryGetProperty("__float__", out var text) && text.ValueKind == JsonValueKind.String
            && double.TryParse(text.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double special))
            return special;
        throw new InvalidDataException($"{Where}: field '{name}' must be a number, found {value.GetRawText()}");
    }

    public string String(string name, string fallback) => Find(name) switch
    {
        { ValueKind: JsonValueKind.String } v => v.GetString()!,
        null => fallback,
        { } v => throw new InvalidDataException($"{Where}: field '{name}' must be a string, found {v.GetRawText()}"),
    };

    public bool Bool(string name, bool fallback) => Find(name) switch
    {
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        null => fallback,
        { } v => throw new InvalidDataException($"{Where}: field '{name}' must be true or false, found {v.GetRawText()}"),
    };

    /// <summary>An element-wise function named as Hugging Face's ACT2FN names it.</summary>
    public Activation Activation(string name, string fallback)
    {
        string value = String(name, fallback);
        return value switch
        {
            "gelu" => Runtime.Activation.Gelu,
            "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => Runtime.Activation.GeluTanh,
            "quick_gelu" => Runtime.Activation.QuickGelu,
            "silu" or "swish" => Runtime.Activation.Silu,
            _ => throw new NotSupportedException($"{Where}: {name} '{value}' is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, silu)"),
        };
    }
}
