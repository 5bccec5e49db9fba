using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace Engine.Runtime.Chat;

// Runtime values. Templates see Python's types, represented as: None = null, bool, int = long, float = double,
// str = string, list = List<object?>, tuple = TupleValue (a List<object?> that prints as a tuple),
// dict = OrderedDictionary<string, object?> (string keys, in insertion order, as tojson and items() show them),
// plus the Jinja-specific kinds below.

/// <summary>A Python tuple: a list in every use here, except that it prints as "(a, b)" and never equals a list.</summary>
internal sealed class TupleValue(IEnumerable<object?> items) : List<object?>(items);

/// <summary>An error found while rendering; the evaluator adds the line of the expression or statement it came from.</summary>
internal sealed class TemplateError(string message) : Exception(message);

/// <summary>
/// Jinja's default Undefined: what a missing variable, attribute, key or index evaluates to. It is falsy, renders as "",
/// iterates as empty and equals only another undefined; arithmetic on it, or taking its attributes, fails with
/// <see cref="Description"/> ("'tools' is undefined").
/// </summary>
internal sealed class Undefined(string description)
{
    public string Description { get; } = description;
}

/// <summary>The object <c>namespace(...)</c> returns: the one value whose attributes <c>{% set ns.x = ... %}</c> may change,
/// which is how a template carries state out of a loop body.</summary>
internal sealed class TemplateNamespace
{
    public OrderedDictionary<string, object?> Attributes { get; } = [];
}

/// <summary>The <c>loop</c> variable inside a for loop, positioned at <paramref name="index"/> of the items iterated.</summary>
internal sealed class LoopContext(IReadOnlyList<object?> items, int index)
{
    public object? GetAttribute(string name) => name switch
    {
        "index" => (long)index + 1,
        "index0" => (long)index,
        "revindex" => (long)(items.Count - index),
        "revindex0" => (long)(items.Count - index - 1),
        "first" => index == 0,
        "last" => index == items.Count - 1,
        "length" => (long)items.Count,
        "previtem" => index > 0 ? items[index - 1] : new Undefined("there is no previous item"),
        "nextitem" => index + 1 < items.Count ? items[index + 1] : new Undefined("there is no next item"),
        "depth" => 1L,
        "depth0" => 0L,
        "cycle" => new BoundMethod(this, name),
        _ => new Undefined($"'loop' has no attribute '{name}'"),
    };

    /// <summary><c>loop.cycle(a, b, ...)</c>: the argument at this iteration's position, round-robin.</summary>
    public object? Cycle(List<object?> values) =>
        values.Count == 0 ? throw new TemplateError("loop.cycle() needs at least one value") : values[index % values.Count];
}

/// <summary>A method looked up on a value (<c>content.strip</c>), waiting to be called.</summary>
internal sealed record BoundMethod(object Target, string Name);

/// <summary>A <c>{% macro %}</c>, with the scope it was defined in, which its body sees.</summary>
internal sealed class Macro(MacroNode definition, Scope scope)
{
    public MacroNode Definition { get; } = definition;
    public Scope Scope { get; } = scope;
}

/// <summary>A global function such as <c>range</c> or <c>raise_exception</c>.</summary>
internal sealed class BuiltinFunction(string name, Func<CallArguments, object?> invoke)
{
    public string Name { get; } = name;
    public object? Invoke(CallArguments arguments) => invoke(arguments);
}

/// <summary>Evaluated call arguments: positional ones in order, then keyword ones.</summary>
internal sealed record CallArguments(List<object?> Positional, List<KeyValuePair<string, object?>> Named)
{
    public static readonly CallArguments None = new([], []);

    /// <summary>
    /// Matches the arguments to <paramref name="parameters"/> the way Python does, refusing extra or unknown ones; a
    /// parameter that was not passed comes back as <see cref="NotGiven"/>.
    /// </summary>
    public object?[] Bind(string callee, params string[] parameters)
    {
        if (Positional.Count > parameters.Length)
            throw new TemplateError($"{callee} takes at most {parameters.Length} argument(s), {Positional.Count} given");
        var values = new object?[parameters.Length];
        Array.Fill(values, NotGiven);
        for (int i = 0; i < Positional.Count; i++) values[i] = Positional[i];
        foreach (var (name, value) in Named)
        {
            int at = Array.IndexOf(parameters, name);
            if (at < 0) throw new TemplateError($"{callee} got an unexpected keyword argument '{name}'");
            if (values[at] != NotGiven) throw new TemplateError($"{callee} got multiple values for argument '{name}'");
            values[at] = value;
        }
        return values;
    }

    /// <summary>Marks a parameter the caller did not pass, which differs from passing <c>none</c>.</summary>
    public static readonly object NotGiven = new();
}

/// <summary>Variables visible at a point of the template: this block's own, then the enclosing ones'.</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Scope? _parent = parent;
    private readonly Dictionary<string, object?> _variables = [];

    public object? Lookup(string name)
    {
        for (var scope = this; scope != null; scope = scope._parent)
            if (scope._variables.TryGetValue(name, out var value)) return value;
        return new Undefined($"'{name}' is undefined");
    }

    public void Set(string name, object? value) => _variables[name] = value;
}

/// <summary>Python's semantics for the values above: truth, str(), repr(), ==, ordering, json.dumps.</summary>
internal static class TemplateValues
{
    public static bool IsTrue(object? value) => value switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> list => list.Count > 0,
        OrderedDictionary<string, object?> dict => dict.Count > 0,
        _ => true,
    };

    /// <summary>Python bools are ints: <c>True + 1 == 2</c>.</summary>
    public static bool IsInteger(object? value) => value is long or bool;

    public static bool IsNumber(object? value) => value is long or bool or double;

    public static long ToLong(object? value) => value is bool b ? (b ? 1 : 0) : (long)value!;

    public static double ToDouble(object? value) => value is double d ? d : ToLong(value);

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        TupleValue => "tuple",
        List<object?> => "list",
        OrderedDictionary<string, object?> => "dict",
        TemplateNamespace => "Namespace",
        LoopContext => "LoopContext",
        Macro => "Macro",
        _ => "function",
    };

    /// <summary>Python's <c>str()</c>, which is what <c>{{ value }}</c> writes; undefined writes nothing.</summary>
    public static string ToText(object? value) => value switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(value),
    };

    /// <summary>Python's <c>repr()</c>, which is how lists and dicts print their items.</summary>
    public static string Repr(object? value)
    {
        var text = new StringBuilder();
        AppendRepr(text, value, new HashSet<object>(ReferenceEqualityComparer.Instance));
        return text.ToString();
    }

    /// <summary><paramref name="open"/> holds the containers being printed: a namespace can hold itself, and Python
    /// prints such a reference as "...".</summary>
    private static void AppendRepr(StringBuilder text, object? value, HashSet<object> open)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        if (value is List<object?> or OrderedDictionary<string, object?> or TemplateNamespace && !open.Add(value))
        {
            text.Append("...");
            return;
        }
        switch (value)
        {
            case null: text.Append("None"); break;
            case Undefined: text.Append("Undefined"); break;
            case bool b: text.Append(b ? "True" : "False"); break;
            case long l: text.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: text.Append(FormatFloat(d)); break;
            case string s: AppendStringRepr(text, s); break;
            case List<object?> list:
                bool tuple = list is TupleValue;
                text.Append(tuple ? '(' : '[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) text.Append(", ");
                    AppendRepr(text, list[i], open);
                }
                text.Append(tuple ? (list.Count == 1 ? ",)" : ")") : "]");
                break;
            case OrderedDictionary<string, object?> dict:
                AppendDictRepr(text, dict, open);
                break;
            case TemplateNamespace ns:
                text.Append("<Namespace ");
                AppendDictRepr(text, ns.Attributes, open);
                text.Append('>');
                break;
            case Macro macro: text.Append($"<Macro '{macro.Definition.Name}'>"); break;
            case BuiltinFunction function: text.Append($"<function {function.Name}>"); break;
            case BoundMethod method: text.Append($"<built-in method {method.Name}>"); break;
            default: text.Append('<').Append(TypeName(value)).Append('>'); break;
        }
        if (value != null) open.Remove(value);
    }

    private static void AppendDictRepr(StringBuilder text, OrderedDictionary<string, object?> dict, HashSet<object> open)
    {
        text.Append('{');
        bool first = true;
        foreach (var (key, item) in dict)
        {
            if (!first) text.Append(", ");
            first = false;
            AppendStringRepr(text, key);
            text.Append(": ");
            AppendRepr(text, item, open);
        }
        text.Append('}');
    }

    private static void AppendStringRepr(StringBuilder text, string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        text.Append(quote);
        foreach (char c in s)
        {
            if (c == quote || c == '\\') text.Append('\\').Append(c);
            else if (c == '\n') text.Append("\\n");
            else if (c == '\r') text.Append("\\r");
            else if (c == '\t') text.Append("\\t");
            else if (c < ' ' || c == '\x7f') text.Append($"\\x{(int)c:x2}");
            else text.Append(c);
        }
        text.Append(quote);
    }

    /// <summary>
    /// Python's float repr: the shortest digits that round-trip, positional for exponents -4..15 and scientific outside
    /// ("1e+16", "1e-05"), always with a point or exponent so it reads as a float ("1.0").
    /// </summary>
    public static string FormatFloat(double value)
    {
        if (double.IsNaN(value)) return "nan";
        if (double.IsInfinity(value)) return value > 0 ? "inf" : "-inf";
        if (value == 0) return double.IsNegative(value) ? "-0.0" : "0.0";
        string roundTrip = Math.Abs(value).ToString("R", CultureInfo.InvariantCulture);
        int exponentAt = roundTrip.IndexOf('E');
        string mantissa = exponentAt < 0 ? roundTrip : roundTrip[..exponentAt];
        int exponent = exponentAt < 0 ? 0 : int.Parse(roundTrip.AsSpan(exponentAt + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        int pointAt = mantissa.IndexOf('.');
        string digits = mantissa.Replace(".", "");
        // Where the decimal point falls in `digits`, after removing leading zeros.
        int pointPosition = (pointAt < 0 ? mantissa.Length : pointAt) + exponent;
        int leadingZeros = digits.Length - digits.TrimStart('0').Length;
        digits = digits.Trim('0');
        pointPosition -= leadingZeros;
        int decimalExponent = pointPosition - 1;
        string sign = value < 0 ? "-" : "";
        if (decimalExponent is >= -4 and < 16)
        {
            if (pointPosition <= 0) return $"{sign}0.{new string('0', -pointPosition)}{digits}";
            if (pointPosition >= digits.Length) return $"{sign}{digits}{new string('0', pointPosition - digits.Length)}.0";
            return $"{sign}{digits[..pointPosition]}.{digits[pointPosition..]}";
        }
        string fraction = digits.Length > 1 ? "." + digits[1..] : "";
        return $"{sign}{digits[0]}{fraction}e{(decimalExponent < 0 ? '-' : '+')}{Math.Abs(decimalExponent):00}";
    }

    /// <summary>Python's <c>==</c>: numbers by value across int, float and bool; lists and dicts item by item.</summary>
    public static bool AreEqual(object? left, object? right)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (left, right)
        {
            case (Undefined, _) or (_, Undefined): return left is Undefined && right is Undefined;
            case (null, _) or (_, null): return left is null && right is null;
            case (string a, string b): return a == b;
            case (List<object?> a, List<object?> b):
                if (a.Count != b.Count || a is TupleValue != b is TupleValue) return false;
                for (int i = 0; i < a.Count; i++)
                    if (!AreEqual(a[i], b[i])) return false;
                return true;
            case (OrderedDictionary<string, object?> a, OrderedDictionary<string, object?> b):
                if (a.Count != b.Count) return false;
                foreach (var (key, value) in a)
                    if (!b.TryGetValue(key, out var other) || !AreEqual(value, other)) return false;
                return true;
        }
        if (IsInteger(left) && IsInteger(right)) return ToLong(left) == ToLong(right);
        if (IsNumber(left) && IsNumber(right)) return ToDouble(left) == ToDouble(right);
        return Equals(left, right);
    }

    /// <summary>Python's ordering (<c>&lt;</c> and friends): numbers, strings by code unit, lists item by item.</summary>
    public static int CompareOrder(object? left, object? right, string operatorText)
    {
        if (IsInteger(left) && IsInteger(right)) return ToLong(left).CompareTo(ToLong(right));
        if (IsNumber(left) && IsNumber(right)) return ToDouble(left).CompareTo(ToDouble(right));
        if (left is string a && right is string b) return string.CompareOrdinal(a, b);
        if (left is List<object?> x && right is List<object?> y)
        {
            for (int i = 0; i < Math.Min(x.Count, y.Count); i++)
                if (!AreEqual(x[i], y[i])) return CompareOrder(x[i], y[i], operatorText);
            return x.Count.CompareTo(y.Count);
        }
        if (left is Undefined u) throw new TemplateError(u.Description);
        if (right is Undefined v) throw new TemplateError(v.Description);
        throw new TemplateError($"'{operatorText}' not supported between instances of '{TypeName(left)}' and '{TypeName(right)}'");
    }

    /// <summary>
    /// Python's <c>json.dumps</c> as Hugging Face's <c>tojson</c> calls it: non-ASCII kept unless
    /// <paramref name="ensureAscii"/>, <c>", "</c> and <c>": "</c> between items (<c>","</c> when indenting).
    /// </summary>
    public static void AppendJson(StringBuilder json, object? value, string? indent, bool sortKeys, bool ensureAscii, string itemSeparator, string keySeparator, int depth)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (value)
        {
            case null: json.Append("null"); break;
            case bool b: json.Append(b ? "true" : "false"); break;
            case long l: json.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d:
                json.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : FormatFloat(d));
                break;
            case string s: AppendJsonString(json, s, ensureAscii); break;
            case List<object?> list:
                if (list.Count == 0)
                {
                    json.Append("[]");
                    break;
                }
                json.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    json.Append(i > 0 ? itemSeparator : "");
                    AppendJsonNewline(json, indent, depth + 1);
                    AppendJson(json, list[i], indent, sortKeys, ensureAscii, itemSeparator, keySeparator, depth + 1);
                }
                AppendJsonNewline(json, indent, depth);
                json.Append(']');
                break;
            case OrderedDictionary<string, object?> dict:
                if (dict.Count == 0)
                {
                    json.Append("{}");
                    break;
                }
                IEnumerable<KeyValuePair<string, object?>> entries = sortKeys ? dict.OrderBy(e => e.Key, StringComparer.Ordinal) : dict;
                json.Append('{');
                bool first = true;
                foreach (var (key, item) in entries)
                {
                    json.Append(first ? "" : itemSeparator);
                    first = false;
                    AppendJsonNewline(json, indent, depth + 1);
                    AppendJsonString(json, key, ensureAscii);
                    json.Append(keySeparator);
                    AppendJson(json, item, indent, sortKeys, ensureAscii, itemSeparator, keySeparator, depth + 1);
                }
                AppendJsonNewline(json, indent, depth);
                json.Append('}');
                break;
            default:
                throw new TemplateError(value is Undefined u ? u.Description : $"Object of type {TypeName(value)} is not JSON serializable");
        }
    }

    private static void AppendJsonNewline(StringBuilder json, string? indent, int depth)
    {
        if (indent == null) return;
        json.Append('\n');
        for (int i = 0; i < depth; i++) json.Append(indent);
    }

    private static void AppendJsonString(StringBuilder json, string s, bool ensureAscii)
    {
        json.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': json.Append("\\\""); break;
                case '\\': json.Append("\\\\"); break;
                case '\n': json.Append("\\n"); break;
                case '\r': json.Append("\\r"); break;
                case '\t': json.Append("\\t"); break;
                case '\b': json.Append("\\b"); break;
                case '\f': json.Append("\\f"); break;
                default:
                    if (c < ' ' || (ensureAscii && c > '~')) json.Append($"\\u{(int)c:x4}");
                    else json.Append(c);
                    break;
            }
        }
        json.Append('"');
    }
}
