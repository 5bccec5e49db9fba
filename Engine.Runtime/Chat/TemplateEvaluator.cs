using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using static Engine.Runtime.Chat.TemplateValues;
using static System.FormattableString;

namespace Engine.Runtime.Chat;

/// <summary>
/// Executes a parsed template against its variables. A for loop body, a macro body and a set block each get their own
/// scope; <c>if</c> does not, so a <c>set</c> inside an <c>if</c> is seen after it, and one inside a loop is not (that is
/// what <c>namespace</c> is for). Rendering is bounded so that no template can hang or exhaust memory: the limits below
/// fail it with a <see cref="ChatTemplateException"/> instead.
/// </summary>
internal sealed partial class TemplateEvaluator
{
    private const int MaxOutputLength = 1_000_000;
    private const int MaxLoopIterations = 100_000;
    private const int MaxMacroDepth = 100;

    /// <summary>
    /// Characters and list items built in all, output and intermediate values together. Each value is capped at
    /// <see cref="MaxOutputLength"/>, but a loop could rebuild a large one on every iteration; this caps the total work.
    /// </summary>
    private const long WorkBudget = 50_000_000;

    private enum Flow { Normal, Break, Continue }

    private long _work;
    private int _iterations;
    private int _macroDepth;

    public static string Render(IReadOnlyList<Node> program, IReadOnlyDictionary<string, object?> variables)
    {
        var evaluator = new TemplateEvaluator();
        var root = new Scope(evaluator.CreateGlobals());
        foreach (var (name, value) in variables) root.Set(name, value);
        var output = new StringBuilder();
        evaluator.ExecuteBody(program, root, output);
        return output.ToString();
    }

    private Flow ExecuteBody(IReadOnlyList<Node> body, Scope scope, StringBuilder output)
    {
        foreach (var node in body)
        {
            var flow = Execute(node, scope, output);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow Execute(Node node, Scope scope, StringBuilder output)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        try
        {
            switch (node)
            {
                case TextNode text:
                    Write(output, text.Text);
                    break;
                case OutputNode print:
                    Write(output, ToText(Evaluate(print.Value, scope)));
                    break;
                case IfNode conditional:
                    foreach (var branch in conditional.Branches)
                        if (IsTrue(Evaluate(branch.Condition, scope))) return ExecuteBody(branch.Body, scope, output);
                    return conditional.Else == null ? Flow.Normal : ExecuteBody(conditional.Else, scope, output);
                case ForNode loop:
                    return ExecuteFor(loop, scope, output);
                case SetNode assignment:
                    Assign(assignment, Evaluate(assignment.Value, scope), scope);
                    break;
                case SetBlockNode capture:
                    var captured = new StringBuilder();
                    ExecuteBody(capture.Body, new Scope(scope), captured);
                    scope.Set(capture.Name, captured.ToString());
                    break;
                case MacroNode macro:
                    scope.Set(macro.Name, new Macro(macro, scope));
                    break;
                case LoopControlNode control:
                    return control.IsBreak ? Flow.Break : Flow.Continue;
            }
            return Flow.Normal;
        }
        catch (TemplateError error)
        {
            throw ChatTemplateException.At(node.Line, error.Message);
        }
    }

    private void Write(StringBuilder output, string text)
    {
        if (output.Length + text.Length > MaxOutputLength) throw new TemplateError(Invariant($"output exceeds {MaxOutputLength:N0} characters"));
        Charge(text.Length);
        output.Append(text);
    }

    private static void Assign(SetNode assignment, object? value, Scope scope)
    {
        if (assignment.Attribute == null)
        {
            Unpack(assignment.Names, value, scope);
            return;
        }
        string name = assignment.Names[0];
        if (scope.Lookup(name) is not TemplateNamespace ns)
            throw new TemplateError($"cannot set attribute '{assignment.Attribute}' of '{name}', which is not a namespace()");
        ns.Attributes[assignment.Attribute] = value;
    }

    private Flow ExecuteFor(ForNode loop, Scope scope, StringBuilder output)
    {
        var items = Iterate(Evaluate(loop.Iterable, scope));
        if (loop.Filter != null)
        {
            // Jinja filters first, so loop.index, loop.last and loop.length count only the items kept.
            var kept = new List<object?>();
            foreach (var item in items)
            {
                CountIteration();
                var itemScope = new Scope(scope);
                Unpack(loop.Targets, item, itemScope);
                if (IsTrue(Evaluate(loop.Filter, itemScope))) kept.Add(item);
            }
            items = kept;
        }
        for (int i = 0; i < items.Count; i++)
        {
            CountIteration();
            var iterationScope = new Scope(scope);
            Unpack(loop.Targets, items[i], iterationScope);
            iterationScope.Set("loop", new LoopContext(items, i));
            if (ExecuteBody(loop.Body, iterationScope, output) == Flow.Break) break;
        }
        return items.Count == 0 && loop.Else != null ? ExecuteBody(loop.Else, scope, output) : Flow.Normal;
    }

    /// <summary>Assigns <paramref name="value"/> to one name, or its items to several (<c>for key, value in ...</c>).</summary>
    private static void Unpack(IReadOnlyList<string> targets, object? value, Scope scope)
    {
        if (targets.Count == 1)
        {
            scope.Set(targets[0], value);
            return;
        }
        if (value is not List<object?> values || values.Count != targets.Count)
            throw new TemplateError($"cannot unpack {(value is List<object?> list ? $"{list.Count} values" : $"'{TypeName(value)}'")} into {targets.Count} names");
        for (int i = 0; i < targets.Count; i++) scope.Set(targets[i], values[i]);
    }

    private void CountIteration()
    {
        if (++_iterations > MaxLoopIterations) throw new TemplateError(Invariant($"loops run more than {MaxLoopIterations:N0} iterations"));
    }

    private void Charge(long units)
    {
        _work += units;
        if (_work > WorkBudget) throw new TemplateError(Invariant($"rendering builds more than {WorkBudget:N0} characters and items"));
    }

    /// <summary>Refuses a string or list about to be built past the size limit, before building it.</summary>
    private void ChargeNew(long length)
    {
        EnsureFits(length);
        Charge(length);
    }

    /// <summary>What a for loop, <c>list</c> or <c>join</c> goes through: a list's items, a string's characters, a dict's keys.</summary>
    private static List<object?> Iterate(object? value) => value switch
    {
        List<object?> list => list,
        string s => s.Select(c => (object?)c.ToString()).ToList(),
        OrderedDictionary<string, object?> dict => dict.Keys.Select(k => (object?)k).ToList(),
        Undefined => [],
        _ => throw new TemplateError($"'{TypeName(value)}' object is not iterable"),
    };

    private object? Evaluate(Expr expr, Scope scope)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        try
        {
            return expr switch
            {
                LiteralExpr literal => literal.Value,
                NameExpr name => scope.Lookup(name.Name),
                ListExpr { IsTuple: true } tuple => new TupleValue(tuple.Items.Select(item => Evaluate(item, scope))),
                ListExpr list => list.Items.Select(item => Evaluate(item, scope)).ToList(),
                DictExpr dict => EvaluateDict(dict, scope),
                AttributeExpr attribute => GetAttribute(Evaluate(attribute.Target, scope), attribute.Name),
                IndexExpr index => GetItem(Evaluate(index.Target, scope), Evaluate(index.Index, scope)),
                SliceExpr slice => Slice(Evaluate(slice.Target, scope), EvaluateOptional(slice.Start, scope), EvaluateOptional(slice.Stop, scope), EvaluateOptional(slice.Step, scope)),
                UnaryExpr unary => EvaluateUnary(unary.Operator, Evaluate(unary.Operand, scope)),
                BinaryExpr { Operator: BinaryOperator.And or BinaryOperator.Or } logical => EvaluateLogical(logical, scope),
                BinaryExpr binary => EvaluateBinary(binary.Operator, Evaluate(binary.Left, scope), Evaluate(binary.Right, scope)),
                CompareExpr compare => EvaluateCompare(compare, scope),
                TestExpr test => ApplyTest(test.Name, Evaluate(test.Target, scope), test.Arguments.Select(a => Evaluate(a, scope)).ToList()) != test.Negated,
                FilterExpr filter => ApplyFilter(filter.Name, Evaluate(filter.Target, scope), EvaluateArguments(filter.Arguments, scope)),
                CallExpr call => Call(Evaluate(call.Callee, scope), EvaluateArguments(call.Arguments, scope)),
                ConditionalExpr conditional => IsTrue(Evaluate(conditional.Condition, scope))
                    ? Evaluate(conditional.Then, scope)
                    : conditional.Otherwise == null ? new Undefined("the condition was false and there is no else") : Evaluate(conditional.Otherwise, scope),
                _ => throw new UnreachableException(expr.GetType().Name),
            };
        }
        catch (TemplateError error)
        {
            throw ChatTemplateException.At(expr.Line, error.Message);
        }
        catch (OverflowException)
        {
            throw ChatTemplateException.At(expr.Line, "integer overflow");
        }
    }

    /// <summary><c>and</c>/<c>or</c> as in Python: the right side only when needed, and the deciding operand as the value.</summary>
    private object? EvaluateLogical(BinaryExpr logical, Scope scope)
    {
        var left = Evaluate(logical.Left, scope);
        bool decided = logical.Operator == BinaryOperator.And ? !IsTrue(left) : IsTrue(left);
        return decided ? left : Evaluate(logical.Right, scope);
    }

    private object? EvaluateOptional(Expr? expr, Scope scope) => expr == null ? null : Evaluate(expr, scope);

    private OrderedDictionary<string, object?> EvaluateDict(DictExpr dict, Scope scope)
    {
        var result = new OrderedDictionary<string, object?>();
        foreach (var (keyExpr, valueExpr) in dict.Entries)
        {
            if (Evaluate(keyExpr, scope) is not string key) throw new TemplateError("dict keys must be strings");
            result[key] = Evaluate(valueExpr, scope);
        }
        return result;
    }

    private CallArguments EvaluateArguments(CallArgumentExprs arguments, Scope scope) => new(
        arguments.Positional.Select(a => Evaluate(a, scope)).ToList(),
        arguments.Named.Select(n => new KeyValuePair<string, object?>(n.Key, Evaluate(n.Value, scope))).ToList());

    private static object? EvaluateUnary(UnaryOperator op, object? operand)
    {
        if (op == UnaryOperator.Not) return !IsTrue(operand);
        if (operand is Undefined undefined) throw new TemplateError(undefined.Description);
        if (!IsNumber(operand)) throw new TemplateError($"bad operand type for unary {(op == UnaryOperator.Negate ? '-' : '+')}: '{TypeName(operand)}'");
        if (op == UnaryOperator.Plus) return operand is bool ? ToLong(operand) : operand;
        return operand is double d ? -d : (object)checked(-ToLong(operand));
    }

    private object? EvaluateBinary(BinaryOperator op, object? left, object? right)
    {
        if (op == BinaryOperator.Concat)
        {
            string a = ToText(left), b = ToText(right);
            ChargeNew((long)a.Length + b.Length);
            return a + b;
        }
        if (left is Undefined u) throw new TemplateError(u.Description);
        if (right is Undefined v) throw new TemplateError(v.Description);
        bool integers = IsInteger(left) && IsInteger(right);
        bool numbers = IsNumber(left) && IsNumber(right);
        switch (op)
        {
            case BinaryOperator.Add when integers: return checked(ToLong(left) + ToLong(right));
            case BinaryOperator.Add when numbers: return ToDouble(left) + ToDouble(right);
            case BinaryOperator.Add when left is string a && right is string b:
                ChargeNew((long)a.Length + b.Length);
                return a + b;
            case BinaryOperator.Add when left is List<object?> a && right is List<object?> b && a is TupleValue == b is TupleValue:
                ChargeNew((long)a.Count + b.Count);
                return a is TupleValue ? new TupleValue(a.Concat(b)) : a.Concat(b).ToList();
            case BinaryOperator.Subtract when integers: return checked(ToLong(left) - ToLong(right));
            case BinaryOperator.Subtract when numbers: return ToDouble(left) - ToDouble(right);
            case BinaryOperator.Multiply when integers: return checked(ToLong(left) * ToLong(right));
            case BinaryOperator.Multiply when numbers: return ToDouble(left) * ToDouble(right);
            case BinaryOperator.Multiply when left is string or List<object?> && IsInteger(right): return Repeat(left!, ToLong(right));
            case BinaryOperator.Multiply when right is string or List<object?> && IsInteger(left): return Repeat(right!, ToLong(left));
            case BinaryOperator.Divide when numbers:
                if (ToDouble(right) == 0) throw new TemplateError("division by zero");
                return ToDouble(left) / ToDouble(right);
            case BinaryOperator.FloorDivide or BinaryOperator.Modulo when numbers:
                return FloorDivideOrModulo(op, left, right, integers);
            case BinaryOperator.Power when integers && ToLong(right) >= 0: return IntegerPower(ToLong(left), ToLong(right));
            case BinaryOperator.Power when numbers: return Math.Pow(ToDouble(left), ToDouble(right));
        }
        throw new TemplateError($"unsupported operand types for {OperatorText(op)}: '{TypeName(left)}' and '{TypeName(right)}'");
    }

    /// <summary>Python's <c>sequence * times</c>.</summary>
    private object Repeat(object sequence, long times)
    {
        var list = sequence as List<object?>;
        int length = list?.Count ?? ((string)sequence).Length;
        if (length == 0 || times <= 0) return list == null ? "" : list is TupleValue ? new TupleValue([]) : new List<object?>();
        ChargeNew(times > MaxOutputLength ? times : length * times);
        if (list == null) return new StringBuilder(length * (int)times).Insert(0, (string)sequence, (int)times).ToString();
        var repeated = new List<object?>(length * (int)times);
        for (int i = 0; i < times; i++) repeated.AddRange(list);
        return list is TupleValue ? new TupleValue(repeated) : repeated;
    }

    /// <summary>Python's <c>//</c> and <c>%</c>: the quotient rounds toward negative infinity and the remainder takes the divisor's sign.</summary>
    private static object FloorDivideOrModulo(BinaryOperator op, object? left, object? right, bool integers)
    {
        if (ToDouble(right) == 0) throw new TemplateError(op == BinaryOperator.Modulo ? "modulo by zero" : "division by zero");
        if (integers)
        {
            long a = ToLong(left), b = ToLong(right);
            long quotient = checked(a / b), remainder = a % b;
            if (remainder != 0 && (remainder < 0) != (b < 0))
            {
                quotient--;
                remainder += b;
            }
            return op == BinaryOperator.FloorDivide ? quotient : remainder;
        }
        return op == BinaryOperator.FloorDivide ? FloatFloorDivide(ToDouble(left), ToDouble(right)) : FloatModulo(ToDouble(left), ToDouble(right));
    }

    /// <summary>Python's float <c>%</c>: the exact remainder (fmod), moved to the divisor's sign.</summary>
    internal static double FloatModulo(double x, double y)
    {
        double remainder = x % y;
        return remainder != 0 && (remainder < 0) != (y < 0) ? remainder + y : remainder;
    }

    /// <summary>Python's float <c>//</c>, derived from the exact remainder as CPython does, so that <c>1 // 0.1</c> is 9.</summary>
    private static double FloatFloorDivide(double x, double y)
    {
        double remainder = x % y;
        double quotient = (x - remainder) / y;
        if (remainder != 0 && (remainder < 0) != (y < 0)) quotient -= 1;
        if (quotient == 0) return Math.CopySign(0, x / y);
        double floored = Math.Floor(quotient);
        return quotient - floored > 0.5 ? floored + 1 : floored;
    }

    private static long IntegerPower(long value, long exponent)
    {
        long result = 1;
        while (exponent > 0)
        {
            if ((exponent & 1) != 0) result = checked(result * value);
            exponent >>= 1;
            if (exponent > 0) value = checked(value * value);
        }
        return result;
    }

    private static string OperatorText(BinaryOperator op) => op switch
    {
        BinaryOperator.Add => "+",
        BinaryOperator.Subtract => "-",
        BinaryOperator.Multiply => "*",
        BinaryOperator.Divide => "/",
        BinaryOperator.FloorDivide => "//",
        BinaryOperator.Modulo => "%",
        _ => "**",
    };

    private bool EvaluateCompare(CompareExpr compare, Scope scope)
    {
        var left = Evaluate(compare.First, scope);
        foreach (var (op, operandExpr) in compare.Rest)
        {
            var right = Evaluate(operandExpr, scope);
            bool holds = op switch
            {
                CompareOperator.Equal => AreEqual(left, right),
                CompareOperator.NotEqual => !AreEqual(left, right),
                CompareOperator.Less => CompareOrder(left, right, "<") < 0,
                CompareOperator.LessOrEqual => CompareOrder(left, right, "<=") <= 0,
                CompareOperator.Greater => CompareOrder(left, right, ">") > 0,
                CompareOperator.GreaterOrEqual => CompareOrder(left, right, ">=") >= 0,
                CompareOperator.In => Contains(right, left),
                _ => !Contains(right, left),
            };
            if (!holds) return false;
            left = right;
        }
        return true;
    }

    private static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string part ? s.Contains(part, StringComparison.Ordinal) : throw new TemplateError($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        List<object?> list => list.Any(element => AreEqual(element, item)),
        OrderedDictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        Undefined => false,
        _ => throw new TemplateError($"argument of type '{TypeName(container)}' is not iterable"),
    };

    /// <summary>
    /// <c>target.name</c> as Jinja resolves it: a method first (<c>dict.items</c>), then a dict key. A missing one is
    /// undefined; taking an attribute of something already undefined is an error.
    /// </summary>
    private static object? GetAttribute(object? target, string name) => target switch
    {
        Undefined undefined => throw new TemplateError(undefined.Description),
        OrderedDictionary<string, object?> dict => DictMethods.Contains(name) ? new BoundMethod(dict, name)
            : dict.TryGetValue(name, out var value) ? value : new Undefined($"'dict object' has no attribute '{name}'"),
        string s => StringMethods.Contains(name) ? new BoundMethod(s, name) : new Undefined($"'str object' has no attribute '{name}'"),
        TemplateNamespace ns => ns.Attributes.TryGetValue(name, out var value) ? value : new Undefined($"namespace has no attribute '{name}'"),
        LoopContext loop => loop.GetAttribute(name),
        _ => new Undefined($"'{TypeName(target)} object' has no attribute '{name}'"),
    };

    /// <summary><c>target[key]</c> as Jinja resolves it: the item first, then an attribute of that name.</summary>
    private static object? GetItem(object? target, object? key)
    {
        switch (target, key)
        {
            case (Undefined undefined, _):
                throw new TemplateError(undefined.Description);
            case (OrderedDictionary<string, object?> dict, string name) when dict.TryGetValue(name, out var value):
                return value;
            case (List<object?> list, _) when IsInteger(key):
                long index = ToLong(key);
                if (index < 0) index += list.Count;
                return index >= 0 && index < list.Count ? list[(int)index] : new Undefined($"list object has no element {ToLong(key)}");
            case (string s, _) when IsInteger(key):
                long at = ToLong(key);
                if (at < 0) at += s.Length;
                return at >= 0 && at < s.Length ? s[(int)at].ToString() : new Undefined($"string has no character {ToLong(key)}");
            case (_, string name):
                return GetAttribute(target, name);
            default:
                return new Undefined($"'{TypeName(target)} object' has no element {Repr(key)}");
        }
    }

    /// <summary>Python's <c>sequence[start:stop:step]</c> on a list or string, with negative and omitted bounds.</summary>
    private static object? Slice(object? target, object? start, object? stop, object? step)
    {
        if (target is Undefined undefined) throw new TemplateError(undefined.Description);
        // Jinja slices with Python's own indexing, so slicing anything else fails rather than giving undefined.
        int length = target switch
        {
            List<object?> list => list.Count,
            string s => s.Length,
            _ => throw new TemplateError($"'{TypeName(target)}' object cannot be sliced"),
        };
        long stride = SliceBound(step) ?? 1;
        if (stride == 0) throw new TemplateError("slice step cannot be zero");
        long first = ClampSliceBound(SliceBound(start), length, stride, isStart: true);
        long end = ClampSliceBound(SliceBound(stop), length, stride, isStart: false);
        var indices = new List<int>();
        for (long i = first; stride > 0 ? i < end : i > end; i += stride) indices.Add((int)i);
        if (target is string text) return string.Concat(indices.Select(i => text[i]));
        var source = (List<object?>)target!;
        var items = indices.Select(i => source[i]);
        return source is TupleValue ? new TupleValue(items) : items.ToList();
    }

    private static long? SliceBound(object? value) => value switch
    {
        null => null,
        _ when IsInteger(value) => ToLong(value),
        _ => throw new TemplateError("slice indices must be integers or none"),
    };

    private static long ClampSliceBound(long? bound, int length, long stride, bool isStart)
    {
        if (bound == null) return stride > 0 ? (isStart ? 0 : length) : (isStart ? length - 1 : -1);
        long value = bound.Value < 0 ? bound.Value + length : bound.Value;
        return stride > 0 ? Math.Clamp(value, 0, length) : Math.Clamp(value, -1, length - 1);
    }

    private object? Call(object? callee, CallArguments arguments) => callee switch
    {
        BoundMethod method => CallMethod(method.Target, method.Name, arguments),
        BuiltinFunction function => function.Invoke(arguments),
        Macro macro => CallMacro(macro, arguments),
        Undefined undefined => throw new TemplateError(undefined.Description),
        _ => throw new TemplateError($"'{TypeName(callee)}' object is not callable"),
    };

    private string CallMacro(Macro macro, CallArguments arguments)
    {
        var definition = macro.Definition;
        if (arguments.Positional.Count > definition.Parameters.Count)
            throw new TemplateError($"macro '{definition.Name}' takes not more than {definition.Parameters.Count} argument(s)");
        foreach (var (name, _) in arguments.Named)
        {
            int at = definition.Parameters.ToList().FindIndex(p => p.Name == name);
            if (at < 0) throw new TemplateError($"macro '{definition.Name}' takes no keyword argument '{name}'");
            if (at < arguments.Positional.Count) throw new TemplateError($"macro '{definition.Name}' got multiple values for argument '{name}'");
        }
        var scope = new Scope(macro.Scope);
        for (int i = 0; i < definition.Parameters.Count; i++)
        {
            var parameter = definition.Parameters[i];
            int named = arguments.Named.FindIndex(n => n.Key == parameter.Name);
            object? value = i < arguments.Positional.Count ? arguments.Positional[i]
                : named >= 0 ? arguments.Named[named].Value
                : parameter.Default != null ? Evaluate(parameter.Default, scope)
                : new Undefined($"parameter '{parameter.Name}' of macro '{definition.Name}' was not given");
            scope.Set(parameter.Name, value);
        }
        if (++_macroDepth > MaxMacroDepth) throw new TemplateError($"macros call each other more than {MaxMacroDepth} deep");
        try
        {
            var output = new StringBuilder();
            ExecuteBody(definition.Body, scope, output);
            return output.ToString();
        }
        finally
        {
            _macroDepth--;
        }
    }
}
