using System.Globalization;
using System.Text;
using static Engine.Runtime.Chat.TemplateValues;
using static System.FormattableString;

namespace Engine.Runtime.Chat;

// The functions, filters, tests and methods templates can call: Jinja's built-ins that chat templates use, Hugging
// Face's additions (raise_exception, strftime_now, its json.dumps-based tojson) and the Python str/dict methods that
// Jinja exposes. Anything else is reported by name ("unknown filter 'foo'").
internal sealed partial class TemplateEvaluator
{
    /// <summary>Every filter Jinja defines, with Hugging Face's tojson; the ones this renderer lacks fail when used.</summary>
    internal static readonly HashSet<string> JinjaFilterNames =
    [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "filesizeformat",
        "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join", "last", "length", "list",
        "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr", "replace", "reverse", "round", "safe",
        "select", "selectattr", "slice", "sort", "string", "striptags", "sum", "title", "tojson", "trim", "truncate",
        "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
    ];

    /// <summary>Every test Jinja defines; the ones this renderer lacks fail when used.</summary>
    internal static readonly HashSet<string> JinjaTestNames =
    [
        "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true", "integer",
        "float", "number", "string", "mapping", "sequence", "iterable", "callable", "sameas", "escaped", "in", "lower",
        "upper", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", ">=", "ge", "<", "lt", "lessthan", "<=", "le",
    ];

    private static readonly HashSet<string> DictMethods = ["items", "keys", "values", "get"];

    private static readonly HashSet<string> StringMethods =
        ["strip", "lstrip", "rstrip", "startswith", "endswith", "split", "upper", "lower", "replace", "title", "capitalize", "join"];

    private Scope CreateGlobals()
    {
        var globals = new Scope(null);
        void Define(string name, Func<CallArguments, object?> invoke) => globals.Set(name, new BuiltinFunction(name, invoke));
        Define("raise_exception", arguments =>
            throw new ChatTemplateException(ToText(Required(arguments.Bind("raise_exception", "message")[0], "raise_exception", "message"))) { RaisedByTemplate = true });
        Define("strftime_now", arguments =>
            Strftime(DateTime.Now, RequiredString(arguments.Bind("strftime_now", "format")[0], "strftime_now", "format")));
        Define("namespace", Namespace);
        Define("range", Range);
        Define("dict", arguments =>
        {
            if (arguments.Positional.Count > 0) throw new TemplateError("dict() takes keyword arguments only");
            return ToDict(arguments.Named);
        });
        return globals;
    }

    private static TemplateNamespace Namespace(CallArguments arguments)
    {
        var ns = new TemplateNamespace();
        if (arguments.Positional.Count > 1) throw new TemplateError("namespace() takes at most one positional argument, a dict");
        if (arguments.Positional.Count == 1)
        {
            if (arguments.Positional[0] is not OrderedDictionary<string, object?> initial) throw new TemplateError("namespace() takes a dict as its positional argument");
            foreach (var (key, value) in initial) ns.Attributes[key] = value;
        }
        foreach (var (key, value) in arguments.Named) ns.Attributes[key] = value;
        return ns;
    }

    private List<object?> Range(CallArguments arguments)
    {
        var values = arguments.Bind("range", "start", "stop", "step");
        long start = 0, stop, step = 1;
        if (values[1] == CallArguments.NotGiven) stop = AsInteger(Required(values[0], "range", "stop"), "range");
        else
        {
            start = AsInteger(values[0], "range");
            stop = AsInteger(values[1], "range");
            if (values[2] != CallArguments.NotGiven) step = AsInteger(values[2], "range");
        }
        if (step == 0) throw new TemplateError("range() step must not be zero");
        Int128 count = Int128.Max(0, step > 0 ? ((Int128)stop - start + step - 1) / step : ((Int128)start - stop - step - 1) / -step);
        if (count > MaxLoopIterations) throw new TemplateError(Invariant($"range() of more than {MaxLoopIterations:N0} items"));
        ChargeNew((long)count);
        var items = new List<object?>((int)count);
        for (long i = 0; i < (long)count; i++) items.Add(checked(start + i * step));
        return items;
    }

    /// <summary>Python's <c>datetime.strftime</c> for the directives date formats use; others are written as they stand.</summary>
    internal static string Strftime(DateTime time, string format)
    {
        var text = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length)
            {
                text.Append(format[i]);
                continue;
            }
            int directiveStart = i;
            char directive = format[++i];
            // glibc's "%-d" drops the zero padding, and Python on Linux passes it through.
            bool unpadded = directive == '-' && i + 1 < format.Length;
            if (unpadded) directive = format[++i];
            (int Value, int Width)? number = directive switch
            {
                'd' => (time.Day, 2),
                'm' => (time.Month, 2),
                'y' => (time.Year % 100, 2),
                'H' => (time.Hour, 2),
                'I' => ((time.Hour + 11) % 12 + 1, 2),
                'M' => (time.Minute, 2),
                'S' => (time.Second, 2),
                'j' => (time.DayOfYear, 3),
                _ => null,
            };
            string? field = number is var (value, width)
                ? value.ToString(unpadded ? "D" : "D" + width, CultureInfo.InvariantCulture)
                : directive switch
                {
                    'Y' => time.Year.ToString(CultureInfo.InvariantCulture),
                    'a' => time.ToString("ddd", CultureInfo.InvariantCulture),
                    'A' => time.ToString("dddd", CultureInfo.InvariantCulture),
                    'b' or 'h' => time.ToString("MMM", CultureInfo.InvariantCulture),
                    'B' => time.ToString("MMMM", CultureInfo.InvariantCulture),
                    'p' => time.Hour < 12 ? "AM" : "PM",
                    'e' => time.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2),
                    'Z' or 'z' => "", // a naive local datetime has no zone
                    '%' => "%",
                    _ => null,
                };
            text.Append(field ?? format[directiveStart..(i + 1)]);
        }
        return text.ToString();
    }

    private object? CallMethod(object target, string name, CallArguments arguments) => target switch
    {
        string s => CallStringMethod(s, name, arguments),
        OrderedDictionary<string, object?> dict => CallDictMethod(dict, name, arguments),
        LoopContext loop when arguments.Named.Count == 0 => loop.Cycle(arguments.Positional),
        _ => throw new TemplateError($"'{TypeName(target)}' object has no method '{name}' that takes these arguments"),
    };

    private object? CallStringMethod(string s, string name, CallArguments arguments)
    {
        switch (name)
        {
            case "strip" or "lstrip" or "rstrip":
                string? chars = OptionalString(arguments.Bind(name, "chars")[0], name);
                return Strip(s, chars, start: name != "rstrip", end: name != "lstrip");
            case "startswith" or "endswith":
                var prefixes = Required(arguments.Bind(name, "prefix")[0], name, "prefix") switch
                {
                    string one => [one],
                    List<object?> several when several.All(p => p is string) => several.Cast<string>().ToList(),
                    _ => throw new TemplateError($"{name} takes a string or a tuple of strings"),
                };
                return prefixes.Any(p => name == "startswith" ? s.StartsWith(p, StringComparison.Ordinal) : s.EndsWith(p, StringComparison.Ordinal));
            case "split":
                var split = arguments.Bind("split", "sep", "maxsplit");
                long maxSplit = split[1] == CallArguments.NotGiven ? -1 : AsInteger(split[1], "split");
                return Split(s, OptionalString(split[0], "split"), maxSplit);
            case "upper":
                arguments.Bind(name);
                return s.ToUpperInvariant();
            case "lower":
                arguments.Bind(name);
                return s.ToLowerInvariant();
            case "title":
                arguments.Bind(name);
                return PythonTitle(s);
            case "capitalize":
                arguments.Bind(name);
                return Capitalize(s);
            case "replace":
                var replace = arguments.Bind("replace", "old", "new", "count");
                long count = replace[2] == CallArguments.NotGiven ? -1 : AsInteger(replace[2], "replace");
                return Replace(s, RequiredString(replace[0], "replace", "old"), RequiredString(replace[1], "replace", "new"), count);
            default: // join
                var parts = Iterate(Required(arguments.Bind("join", "iterable")[0], "join", "iterable"));
                int notText = parts.FindIndex(p => p is not string);
                if (notText >= 0) throw new TemplateError($"join: sequence items must be str, not {TypeName(parts[notText])}");
                return Join(parts.Cast<string>(), s);
        }
    }

    private static object? CallDictMethod(OrderedDictionary<string, object?> dict, string name, CallArguments arguments)
    {
        switch (name)
        {
            case "items":
                arguments.Bind(name);
                return dict.Select(entry => (object?)new TupleValue([entry.Key, entry.Value])).ToList();
            case "keys":
                arguments.Bind(name);
                return dict.Keys.Select(key => (object?)key).ToList();
            case "values":
                arguments.Bind(name);
                return dict.Values.ToList();
            default: // get
                var get = arguments.Bind("get", "key", "default");
                var key = Required(get[0], "get", "key");
                return key is string k && dict.TryGetValue(k, out var value) ? value : Given(get[1], null);
        }
    }

    private object? ApplyFilter(string name, object? value, CallArguments arguments)
    {
        switch (name)
        {
            case "trim":
                return Strip(ToText(value), OptionalString(arguments.Bind(name, "chars")[0], name), start: true, end: true);
            case "length" or "count":
                arguments.Bind(name);
                return value switch
                {
                    string s => (long)s.Length,
                    List<object?> list => (long)list.Count,
                    OrderedDictionary<string, object?> dict => (long)dict.Count,
                    Undefined => 0L,
                    _ => throw new TemplateError($"object of type '{TypeName(value)}' has no len()"),
                };
            case "lower":
                arguments.Bind(name);
                return ToText(value).ToLowerInvariant();
            case "upper":
                arguments.Bind(name);
                return ToText(value).ToUpperInvariant();
            case "capitalize":
                arguments.Bind(name);
                return Capitalize(ToText(value));
            case "title":
                arguments.Bind(name);
                return JinjaTitle(ToText(value));
            case "string":
                arguments.Bind(name);
                return ToText(value);
            case "safe":
                arguments.Bind(name);
                return ToText(value); // marks the text as not to be escaped, and nothing is escaped in the first place
            case "default" or "d":
                var fallback = arguments.Bind(name, "default_value", "boolean");
                bool replaceFalsy = IsTrue(Given(fallback[1], false));
                return value is Undefined || (replaceFalsy && !IsTrue(value)) ? Given(fallback[0], "") : value;
            case "tojson":
                return ToJson(value, arguments);
            case "join":
                var join = arguments.Bind("join", "d", "attribute");
                var items = Iterate(value);
                if (join[1] != CallArguments.NotGiven) items = items.Select(item => GetAttributePath(item, join[1])).ToList();
                return Join(items.Select(ToText), ToText(Given(join[0], "")));
            case "list":
                arguments.Bind(name);
                var copy = new List<object?>(Iterate(value));
                Charge(copy.Count);
                return copy;
            case "first":
                arguments.Bind(name);
                var all = Iterate(value);
                return all.Count > 0 ? all[0] : new Undefined("no first item, sequence was empty");
            case "last":
                arguments.Bind(name);
                var sequence = Iterate(value);
                return sequence.Count > 0 ? sequence[^1] : new Undefined("no last item, sequence was empty");
            case "reverse":
                arguments.Bind(name);
                if (value is string text) return new string(text.Reverse().ToArray());
                return Enumerable.Reverse(Iterate(value)).ToList();
            case "replace":
                var replace = arguments.Bind("replace", "old", "new", "count");
                long count = Given(replace[2], null) == null ? -1 : AsInteger(replace[2], "replace");
                return Replace(ToText(value), RequiredString(replace[0], "replace", "old"), RequiredString(replace[1], "replace", "new"), count);
            case "items":
                arguments.Bind(name);
                return value switch
                {
                    OrderedDictionary<string, object?> dict => CallDictMethod(dict, "items", CallArguments.None),
                    Undefined => new List<object?>(),
                    _ => throw new TemplateError("items: can only get item pairs from a mapping"),
                };
            case "selectattr" or "rejectattr":
                return Select(value, arguments, name, byAttribute: true, keep: name == "selectattr");
            case "select" or "reject":
                return Select(value, arguments, name, byAttribute: false, keep: name == "select");
            case "map":
                return Map(value, arguments);
            case "sort":
                return Sort(value, arguments);
            case "unique":
                var unique = arguments.Bind("unique", "case_sensitive", "attribute");
                var seen = new List<object?>();
                var result = new List<object?>();
                foreach (var item in Iterate(value))
                {
                    var key = SortKey(item, unique[1], caseSensitive: IsTrue(Given(unique[0], false)));
                    if (seen.Any(s => AreEqual(s, key))) continue;
                    seen.Add(key);
                    result.Add(item);
                }
                return result;
            case "int":
                var toInt = arguments.Bind("int", "default");
                return ToInteger(value) ?? Given(toInt[0], 0L);
            case "float":
                var toFloat = arguments.Bind("float", "default");
                return ToFloat(value) ?? Given(toFloat[0], 0.0);
            case "abs":
                arguments.Bind(name);
                return value switch
                {
                    double d => Math.Abs(d),
                    _ when IsInteger(value) => (object)checked(Math.Abs(ToLong(value))),
                    _ => throw new TemplateError($"bad operand type for abs(): '{TypeName(value)}'"),
                };
            case "indent":
                return Indent(ToText(value), arguments);
            default:
                throw new TemplateError(JinjaFilterNames.Contains(name) ? $"filter '{name}' is not supported" : $"unknown filter '{name}'");
        }
    }

    private bool ApplyTest(string name, object? value, List<object?> arguments)
    {
        object? Argument()
        {
            if (arguments.Count != 1) throw new TemplateError($"test '{name}' takes one argument");
            return arguments[0];
        }
        if (arguments.Count > 0 && name is "defined" or "undefined" or "none" or "string" or "number" or "integer" or "float"
                or "boolean" or "true" or "false" or "mapping" or "iterable" or "sequence" or "callable" or "even" or "odd" or "lower" or "upper")
            throw new TemplateError($"test '{name}' takes no arguments");
        return name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value is null,
            "string" => value is string,
            "number" => IsNumber(value),
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "mapping" => value is OrderedDictionary<string, object?>,
            // Jinja's Undefined supports iteration, len() and indexing, so these tests say yes to it.
            "iterable" or "sequence" => value is string or List<object?> or OrderedDictionary<string, object?> or Undefined,
            "callable" => value is BuiltinFunction or BoundMethod or Macro,
            "even" or "odd" => IsDivisible(value, 2L, name) == (name == "even"),
            "divisibleby" => IsDivisible(value, Argument(), name),
            "lower" or "upper" => HasOnlyCase(ToText(value), upper: name == "upper"),
            "equalto" or "eq" or "==" => AreEqual(value, Argument()),
            "ne" or "!=" => !AreEqual(value, Argument()),
            "lt" or "lessthan" or "<" => CompareOrder(value, Argument(), "<") < 0,
            "le" or "<=" => CompareOrder(value, Argument(), "<=") <= 0,
            "gt" or "greaterthan" or ">" => CompareOrder(value, Argument(), ">") > 0,
            "ge" or ">=" => CompareOrder(value, Argument(), ">=") >= 0,
            "in" => Contains(Argument(), value),
            "sameas" => Argument() is var other && (value is null || value is bool ? AreEqual(value, other) && (other is null || other is bool) : ReferenceEquals(value, other)),
            _ => throw new TemplateError(JinjaTestNames.Contains(name) ? $"test '{name}' is not supported" : $"unknown test '{name}'"),
        };
    }

    /// <summary>Python's <c>str.isupper()</c>/<c>islower()</c>: some cased letter, and none of the other case.</summary>
    private static bool HasOnlyCase(string text, bool upper) =>
        text.Any(c => upper ? char.IsUpper(c) : char.IsLower(c)) && !text.Any(c => upper ? char.IsLower(c) : char.IsUpper(c));

    /// <summary>Jinja's <c>value % divisor == 0</c>, with Python's modulo on ints and floats alike.</summary>
    private static bool IsDivisible(object? value, object? divisor, string test)
    {
        if (!IsNumber(value) || !IsNumber(divisor)) throw new TemplateError($"test '{test}' needs numbers");
        if (ToDouble(divisor) == 0) throw new TemplateError($"test '{test}': modulo by zero");
        if (IsInteger(value) && IsInteger(divisor)) return ToLong(value) % ToLong(divisor) == 0;
        return FloatModulo(ToDouble(value), ToDouble(divisor)) == 0;
    }

    /// <summary>
    /// <c>selectattr(attribute, test, args...)</c> / <c>select(test, args...)</c> and their reject forms: the items whose
    /// attribute (or which themselves) pass the test, or are truthy when no test is named.
    /// </summary>
    private List<object?> Select(object? value, CallArguments arguments, string filter, bool byAttribute, bool keep)
    {
        if (arguments.Named.Count > 0) throw new TemplateError($"{filter} takes no keyword arguments");
        var positional = arguments.Positional;
        if (byAttribute && positional.Count == 0) throw new TemplateError($"{filter} needs an attribute name");
        int testAt = byAttribute ? 1 : 0;
        string? test = positional.Count > testAt ? RequiredString(positional[testAt], filter, "test") : null;
        var testArguments = positional.Skip(testAt + 1).ToList();
        var kept = new List<object?>();
        foreach (var item in Iterate(value))
        {
            var subject = byAttribute ? GetAttributePath(item, positional[0]) : item;
            bool passes = test == null ? IsTrue(subject) : ApplyTest(test, subject, testArguments);
            if (passes == keep) kept.Add(item);
        }
        return kept;
    }

    /// <summary><c>map(attribute='name', default=x)</c> takes an attribute of each item; <c>map('filter', args...)</c> applies a filter.</summary>
    private List<object?> Map(object? value, CallArguments arguments)
    {
        var items = Iterate(value);
        if (arguments.Positional.Count == 0)
        {
            var mapping = arguments.Bind("map", "attribute", "default");
            var attribute = Required(mapping[0], "map", "attribute");
            return items.Select(item =>
            {
                var found = GetAttributePath(item, attribute);
                return found is Undefined ? Given(mapping[1], found) : found;
            }).ToList();
        }
        string filter = RequiredString(arguments.Positional[0], "map", "filter");
        var filterArguments = new CallArguments(arguments.Positional.Skip(1).ToList(), arguments.Named);
        return items.Select(item => ApplyFilter(filter, item, filterArguments)).ToList();
    }

    private List<object?> Sort(object? value, CallArguments arguments)
    {
        var sort = arguments.Bind("sort", "reverse", "case_sensitive", "attribute");
        bool caseSensitive = IsTrue(Given(sort[1], false));
        var keyed = Iterate(value).Select(item => (Item: item, Key: SortKey(item, sort[2], caseSensitive))).ToList();
        var comparer = Comparer<object?>.Create((a, b) => CompareOrder(a, b, "<"));
        // OrderBy is stable, like Python's sort, in both directions.
        var ordered = IsTrue(Given(sort[0], false)) ? keyed.OrderByDescending(e => e.Key, comparer) : keyed.OrderBy(e => e.Key, comparer);
        try
        {
            return ordered.Select(e => e.Item).ToList();
        }
        catch (InvalidOperationException sortFailure) when (sortFailure.InnerException is TemplateError incomparable)
        {
            throw incomparable; // the sort wraps what the comparer throws
        }
    }

    /// <summary>What sort and unique compare: the item or its attribute, lower-cased unless case matters.</summary>
    private static object? SortKey(object? item, object? attribute, bool caseSensitive)
    {
        var key = attribute == CallArguments.NotGiven || attribute == null ? item : GetAttributePath(item, attribute);
        return !caseSensitive && key is string s ? s.ToLowerInvariant() : key;
    }

    /// <summary>Jinja's attribute lookup for filters: "a.b" walks item["a"]["b"], and "0" is an index.</summary>
    private static object? GetAttributePath(object? item, object? path)
    {
        if (path is not string dotted) return GetItem(item, path);
        foreach (var part in dotted.Split('.'))
            item = GetItem(item, long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out long index) ? index : part);
        return item;
    }

    private string ToJson(object? value, CallArguments arguments)
    {
        // Hugging Face's signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
        var options = arguments.Bind("tojson", "ensure_ascii", "indent", "separators", "sort_keys");
        string? indent = Given(options[1], null) switch
        {
            null => null,
            string s => s,
            var width when IsInteger(width) => new string(' ', (int)Math.Clamp(ToLong(width), 0, 64)),
            _ => throw new TemplateError("tojson: indent must be an integer or a string"),
        };
        var (itemSeparator, keySeparator) = Given(options[2], null) switch
        {
            null => indent == null ? (", ", ": ") : (",", ": "),
            List<object?> { Count: 2 } pair when pair[0] is string item && pair[1] is string key => (item, key),
            _ => throw new TemplateError("tojson: separators must be a pair of strings"),
        };
        var json = new StringBuilder();
        AppendJson(json, value, indent, IsTrue(Given(options[3], false)), IsTrue(Given(options[0], false)), itemSeparator, keySeparator, depth: 0);
        ChargeNew(json.Length);
        return json.ToString();
    }

    /// <summary>Jinja's indent filter: every line after the first (and the first too with first=true) gets the
    /// indentation; blank lines only with blank=true.</summary>
    private string Indent(string text, CallArguments arguments)
    {
        var options = arguments.Bind("indent", "width", "first", "blank");
        string indentation = Given(options[0], 4L) switch
        {
            string s => s,
            var width when IsInteger(width) => new string(' ', (int)Math.Clamp(ToLong(width), 0, 1000)),
            _ => throw new TemplateError("indent: width must be an integer or a string"),
        };
        bool blank = IsTrue(Given(options[2], false));
        var lines = text.Replace("\r\n", "\n").Replace('\r', '\n').Split('\n');
        // Python's splitlines() does not yield an empty last line for a trailing newline.
        if (lines.Length > 1 && lines[^1].Length == 0) lines = lines[..^1];
        var indented = new StringBuilder(lines[0]);
        foreach (var line in lines.Skip(1))
        {
            indented.Append('\n');
            if (blank || line.Length > 0) indented.Append(indentation);
            indented.Append(line);
            EnsureFits(indented.Length);
        }
        if (IsTrue(Given(options[1], false))) indented.Insert(0, indentation);
        ChargeNew(indented.Length);
        return indented.ToString();
    }

    private string Join(IEnumerable<string> parts, string separator)
    {
        var joined = new StringBuilder();
        bool first = true;
        foreach (var part in parts)
        {
            if (!first) joined.Append(separator);
            first = false;
            joined.Append(part);
            EnsureFits(joined.Length);
        }
        ChargeNew(joined.Length);
        return joined.ToString();
    }

    /// <summary>Python's <c>str.replace</c>, including its empty <paramref name="old"/> (insert between every character).</summary>
    private string Replace(string s, string old, string replacement, long count)
    {
        var result = new StringBuilder();
        int position = 0;
        for (long done = 0; count < 0 || done < count; done++)
        {
            if (old.Length == 0)
            {
                if (position > s.Length) break;
                result.Append(replacement);
                if (position < s.Length) result.Append(s[position]);
                position++;
            }
            else
            {
                int at = s.IndexOf(old, position, StringComparison.Ordinal);
                if (at < 0) break;
                result.Append(s, position, at - position).Append(replacement);
                position = at + old.Length;
            }
            EnsureFits(result.Length);
        }
        if (position < s.Length) result.Append(s, position, s.Length - position);
        ChargeNew(result.Length);
        return result.ToString();
    }

    private void EnsureFits(long length)
    {
        if (length > MaxOutputLength) throw new TemplateError(Invariant($"a value grows past {MaxOutputLength:N0} characters or items"));
    }

    private static string Strip(string s, string? chars, bool start, bool end)
    {
        char[]? set = chars?.ToCharArray();
        if (start) s = set == null ? s.TrimStart() : s.TrimStart(set);
        if (end) s = set == null ? s.TrimEnd() : s.TrimEnd(set);
        return s;
    }

    /// <summary>Python's <c>str.split</c>: on runs of whitespace, ends ignored, when there is no separator.</summary>
    private static List<object?> Split(string s, string? separator, long maxSplit)
    {
        if (separator != null)
        {
            if (separator.Length == 0) throw new TemplateError("split: empty separator");
            var pieces = maxSplit < 0 ? s.Split(separator) : s.Split(separator, (int)Math.Min(maxSplit + 1, int.MaxValue));
            return pieces.Select(p => (object?)p).ToList();
        }
        var words = new List<object?>();
        int i = 0;
        while (true)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            if (i == s.Length) break;
            if (maxSplit >= 0 && words.Count == maxSplit)
            {
                words.Add(s[i..]);
                break;
            }
            int wordStart = i;
            while (i < s.Length && !char.IsWhiteSpace(s[i])) i++;
            words.Add(s[wordStart..i]);
        }
        return words;
    }

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>Python's <c>str.title()</c>: a letter is upper-cased after a non-letter, lower-cased after a letter.</summary>
    private static string PythonTitle(string s)
    {
        var title = new StringBuilder(s.Length);
        bool afterLetter = false;
        foreach (char c in s)
        {
            title.Append(afterLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            afterLetter = char.IsLetter(c);
        }
        return title.ToString();
    }

    /// <summary>Jinja's <c>title</c> filter: words begin after whitespace, '-', or an opening bracket.</summary>
    private static string JinjaTitle(string s)
    {
        var title = new StringBuilder(s.Length);
        bool wordStart = true;
        foreach (char c in s)
        {
            bool separator = char.IsWhiteSpace(c) || c is '-' or '(' or '{' or '[' or '<';
            title.Append(separator ? c : wordStart ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            wordStart = separator;
        }
        return title.ToString();
    }

    private static long? ToInteger(object? value) => value switch
    {
        Undefined undefined => throw new TemplateError(undefined.Description),
        _ when IsInteger(value) => ToLong(value),
        double d when double.IsFinite(d) && Math.Abs(d) < 9.2e18 => (long)d,
        string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long parsed) => parsed,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d) && Math.Abs(d) < 9.2e18 => (long)d,
        _ => null,
    };

    private static double? ToFloat(object? value) => value switch
    {
        Undefined undefined => throw new TemplateError(undefined.Description),
        _ when IsNumber(value) => ToDouble(value),
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        _ => null,
    };

    private static OrderedDictionary<string, object?> ToDict(IEnumerable<KeyValuePair<string, object?>> entries)
    {
        var dict = new OrderedDictionary<string, object?>();
        foreach (var (key, value) in entries) dict[key] = value;
        return dict;
    }

    private static object? Given(object? value, object? fallback) => value == CallArguments.NotGiven ? fallback : value;

    private static object? Required(object? value, string callee, string parameter) =>
        value == CallArguments.NotGiven ? throw new TemplateError($"{callee} is missing its '{parameter}' argument") : value;

    private static string RequiredString(object? value, string callee, string parameter) =>
        Required(value, callee, parameter) as string ?? throw new TemplateError($"{callee}: '{parameter}' must be a string, not {TypeName(value)}");

    private static string? OptionalString(object? value, string callee) => Given(value, null) switch
    {
        null => null,
        string s => s,
        _ => throw new TemplateError($"{callee}: expected a string or none, not {TypeName(value)}"),
    };

    private static long AsInteger(object? value, string callee) =>
        IsInteger(value) ? ToLong(value) : throw new TemplateError($"{callee}: '{TypeName(value)}' object cannot be interpreted as an integer");
}
