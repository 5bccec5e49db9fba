using System.Globalization;
using System.Runtime.CompilerServices;

namespace Engine.Runtime.Chat;

/// <summary>
/// Recursive-descent parser from tokens to the template AST, following Jinja's grammar and operator precedence (loosest
/// first): <c>x if c else y</c>, <c>or</c>, <c>and</c>, <c>not</c>, comparisons and <c>in</c>, <c>+ -</c>, <c>~</c>,
/// <c>* / // %</c>, <c>**</c>, unary <c>- +</c>, then postfix <c>.attr [index] (call)</c> and filters/tests
/// (<c>a + b | trim</c> is <c>a + (b | trim)</c>).
/// </summary>
internal sealed class TemplateParser
{
    /// <summary>Statements plus parenthesised expressions nested deeper than this are refused, so the parser's recursion
    /// stays well inside the stack; real chat templates nest fewer than ten deep.</summary>
    private const int MaxNesting = 100;

    private readonly List<Token> _tokens;
    private int _index;
    private int _nesting;
    private int _loopDepth;

    /// <summary>
    /// Inside an if statement or conditional expression. Jinja rejects a filter or test name it does not know when it
    /// compiles the template, unless it stands in one of those, where it fails only if reached.
    /// </summary>
    private bool _inConditional;

    /// <summary>Unknown filter and test names met outside conditionals, as yet: one becomes conditional after the fact
    /// when it turns out to be the first operand of <c>x if c else y</c>.</summary>
    private readonly List<(string Description, int Line)> _unknownNames = [];

    private TemplateParser(List<Token> tokens) => _tokens = tokens;

    public static IReadOnlyList<Node> Parse(string source)
    {
        var parser = new TemplateParser(TemplateLexer.Tokenize(source));
        var program = parser.ParseBody([], opener: null, openerLine: 0).Body;
        if (parser._unknownNames.Count > 0)
            throw ChatTemplateException.At(parser._unknownNames[0].Line, parser._unknownNames[0].Description);
        return program;
    }

    private Token Current => _tokens[_index];

    private Token Peek(int offset) => _tokens[Math.Min(_index + offset, _tokens.Count - 1)];

    private Token Advance() => _tokens[_index < _tokens.Count - 1 ? _index++ : _index];

    /// <summary>
    /// Statements up to one of <paramref name="endTags"/> (its name consumed, the rest of that tag left for the caller)
    /// or, at the top level where there are none, to the end of the input.
    /// </summary>
    private (List<Node> Body, string EndTag) ParseBody(HashSet<string> endTags, string? opener, int openerLine)
    {
        EnterNesting();
        var body = new List<Node>();
        while (true)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.Text:
                    Advance();
                    body.Add(new TextNode(token.Value, token.Line));
                    break;
                case TokenKind.VariableStart:
                    Advance();
                    body.Add(new OutputNode(ParseTuple(withConditionals: true), token.Line));
                    Expect(TokenKind.VariableEnd, "'}}'");
                    break;
                case TokenKind.BlockStart:
                    var keyword = Peek(1);
                    if (keyword.Kind == TokenKind.Name && endTags.Contains(keyword.Value))
                    {
                        _index += 2;
                        _nesting--;
                        return (body, keyword.Value);
                    }
                    Advance();
                    ParseStatement(body);
                    break;
                case TokenKind.EndOfInput:
                    if (opener != null)
                        throw ChatTemplateException.At(token.Line, $"'{{% {opener} %}}' from line {openerLine} is never closed (expected '{{% {endTags.Last()} %}}')");
                    _nesting--;
                    return (body, "");
                default:
                    throw Unexpected(token);
            }
        }
    }

    private void ParseStatement(List<Node> into)
    {
        var keyword = Expect(TokenKind.Name, "a statement name");
        switch (keyword.Value)
        {
            case "if": into.Add(ParseIf(keyword.Line)); break;
            case "for": into.Add(ParseFor(keyword.Line)); break;
            case "set": into.Add(ParseSet(keyword.Line)); break;
            case "macro": into.Add(ParseMacro(keyword.Line)); break;
            case "break" or "continue":
                if (_loopDepth == 0) throw ChatTemplateException.At(keyword.Line, $"'{keyword.Value}' outside of a loop");
                ExpectBlockEnd();
                into.Add(new LoopControlNode(keyword.Value == "break", keyword.Line));
                break;
            case "generation":
                // Hugging Face's tag marking assistant text for its assistant-token mask; for rendering it is transparent.
                into.AddRange(ParseBlockBody(["endgeneration"], "generation", keyword.Line, _loopDepth, inConditional: false).Body);
                ExpectBlockEnd();
                break;
            case "elif" or "else" or "endif" or "endfor" or "endset" or "endmacro" or "endgeneration":
                throw ChatTemplateException.At(keyword.Line, $"unexpected '{{% {keyword.Value} %}}'");
            default:
                throw ChatTemplateException.At(keyword.Line, $"unknown tag '{keyword.Value}'");
        }
    }

    /// <summary>
    /// The rest of a block statement's header and its body, up to one of <paramref name="endTags"/>. Jinja allows a
    /// Python-style colon before the header's '%}'. <paramref name="loopDepth"/> says whether break and continue may
    /// appear; <paramref name="inConditional"/> whether an unknown filter or test waits until it is reached to fail.
    /// </summary>
    private (List<Node> Body, string EndTag) ParseBlockBody(HashSet<string> endTags, string opener, int openerLine, int loopDepth, bool inConditional)
    {
        SkipOperator(":");
        ExpectBlockEnd();
        (int enclosingLoopDepth, bool enclosingConditional) = (_loopDepth, _inConditional);
        (_loopDepth, _inConditional) = (loopDepth, inConditional);
        var body = ParseBody(endTags, opener, openerLine);
        (_loopDepth, _inConditional) = (enclosingLoopDepth, enclosingConditional);
        return body;
    }

    private IfNode ParseIf(int line)
    {
        bool enclosingConditional = _inConditional;
        _inConditional = true;
        var branches = new List<IfBranch>();
        IReadOnlyList<Node>? otherwise = null;
        var condition = ParseTuple(withConditionals: false);
        while (true)
        {
            var (body, endTag) = ParseBlockBody(["elif", "else", "endif"], "if", line, _loopDepth, inConditional: true);
            branches.Add(new IfBranch(condition, body));
            if (endTag == "elif")
            {
                condition = ParseTuple(withConditionals: false);
                continue;
            }
            if (endTag == "else") otherwise = ParseBlockBody(["endif"], "if", line, _loopDepth, inConditional: true).Body;
            ExpectBlockEnd();
            _inConditional = enclosingConditional;
            return new IfNode(branches, otherwise, line);
        }
    }

    private ForNode ParseFor(int line)
    {
        var targets = new List<string>();
        bool parenthesised = SkipOperator("(");
        do targets.Add(Expect(TokenKind.Name, "a loop variable name").Value);
        while (SkipOperator(","));
        if (parenthesised) ExpectOperator(")");
        ExpectName("in");
        // No conditional expression here: a trailing "if" is the loop's filter, as in Jinja.
        var iterable = ParseTuple(withConditionals: false);
        Expr? filter = null;
        if (SkipName("if"))
        {
            // Jinja evaluates the filter inside the loop, where a conditional around the loop no longer counts.
            bool enclosingConditional = _inConditional;
            _inConditional = false;
            filter = ParseExpression();
            _inConditional = enclosingConditional;
        }
        if (Current is { Kind: TokenKind.Name, Value: "recursive" })
            throw ChatTemplateException.At(Current.Line, "recursive loops are not supported");
        var (body, endTag) = ParseBlockBody(["else", "endfor"], "for", line, _loopDepth + 1, inConditional: false);
        var otherwise = endTag == "else" ? ParseBlockBody(["endfor"], "for", line, _loopDepth, _inConditional).Body : null;
        ExpectBlockEnd();
        return new ForNode(targets, iterable, filter, body, otherwise, line);
    }

    private Node ParseSet(int line)
    {
        string name = Expect(TokenKind.Name, "a variable name").Value;
        string? attribute = SkipOperator(".") ? Expect(TokenKind.Name, "an attribute name").Value : null;
        var names = new List<string> { name };
        while (attribute == null && SkipOperator(",")) names.Add(Expect(TokenKind.Name, "a variable name").Value);
        if (SkipOperator("="))
        {
            var value = ParseTuple(withConditionals: true);
            ExpectBlockEnd();
            return new SetNode(names, attribute, value, line);
        }
        if (attribute != null || names.Count > 1 || Current.Kind != TokenKind.BlockEnd) throw Unexpected(Current, "'='");
        var body = ParseBlockBody(["endset"], "set", line, _loopDepth, inConditional: false).Body;
        ExpectBlockEnd();
        return new SetBlockNode(name, body, line);
    }

    private MacroNode ParseMacro(int line)
    {
        string name = Expect(TokenKind.Name, "a macro name").Value;
        var parameters = new List<MacroParameter>();
        ExpectOperator("(");
        while (!SkipOperator(")"))
        {
            if (parameters.Count > 0)
            {
                ExpectOperator(",");
                if (SkipOperator(")")) break;
            }
            string parameter = Expect(TokenKind.Name, "a parameter name").Value;
            parameters.Add(new MacroParameter(parameter, SkipOperator("=") ? ParseExpression() : null));
        }
        // A loop around the macro's definition is not a loop around its body.
        var body = ParseBlockBody(["endmacro"], "macro", line, loopDepth: 0, inConditional: false).Body;
        ExpectBlockEnd();
        return new MacroNode(name, parameters, body, line);
    }

    /// <summary>
    /// An expression, or several separated by commas, which make a tuple: <c>{{ a, b }}</c>, <c>{% set t = 1, 2 %}</c>.
    /// Jinja parses the bodies of output tags, set, if and for this way, the last two without conditional expressions.
    /// </summary>
    private Expr ParseTuple(bool withConditionals)
    {
        int line = Current.Line;
        var first = withConditionals ? ParseExpression() : ParseOr();
        if (!IsOperator(",")) return first;
        var items = new List<Expr> { first };
        while (SkipOperator(",") && !(Current.Kind is TokenKind.BlockEnd or TokenKind.VariableEnd || IsOperator(")")))
            items.Add(withConditionals ? ParseExpression() : ParseOr());
        return new ListExpr(items, IsTuple: true, line);
    }

    private Expr ParseExpression()
    {
        int line = Current.Line;
        int unknownNamesBefore = _unknownNames.Count;
        var expr = ParseOr();
        while (SkipName("if"))
        {
            _unknownNames.RemoveRange(unknownNamesBefore, _unknownNames.Count - unknownNamesBefore);
            bool enclosingConditional = _inConditional;
            _inConditional = true;
            var condition = ParseOr();
            Expr? otherwise = null;
            if (SkipName("else"))
            {
                EnterNesting();
                otherwise = ParseExpression();
                _nesting--;
            }
            _inConditional = enclosingConditional;
            expr = new ConditionalExpr(condition, expr, otherwise, line);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current is { Kind: TokenKind.Name, Value: "or" })
        {
            int line = Advance().Line;
            left = new BinaryExpr(BinaryOperator.Or, left, ParseAnd(), line);
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current is { Kind: TokenKind.Name, Value: "and" })
        {
            int line = Advance().Line;
            left = new BinaryExpr(BinaryOperator.And, left, ParseNot(), line);
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (Current is not { Kind: TokenKind.Name, Value: "not" }) return ParseCompare();
        int line = Advance().Line;
        EnterNesting();
        var operand = ParseNot();
        _nesting--;
        return new UnaryExpr(UnaryOperator.Not, operand, line);
    }

    private Expr ParseCompare()
    {
        int line = Current.Line;
        var first = ParseAdditive();
        var rest = new List<KeyValuePair<CompareOperator, Expr>>();
        while (true)
        {
            CompareOperator op;
            var token = Current;
            if (token.Kind == TokenKind.Operator && token.Value is "==" or "!=" or "<" or "<=" or ">" or ">=")
            {
                op = token.Value switch
                {
                    "==" => CompareOperator.Equal,
                    "!=" => CompareOperator.NotEqual,
                    "<" => CompareOperator.Less,
                    "<=" => CompareOperator.LessOrEqual,
                    ">" => CompareOperator.Greater,
                    _ => CompareOperator.GreaterOrEqual,
                };
                Advance();
            }
            else if (token is { Kind: TokenKind.Name, Value: "in" })
            {
                op = CompareOperator.In;
                Advance();
            }
            else if (token is { Kind: TokenKind.Name, Value: "not" } && Peek(1) is { Kind: TokenKind.Name, Value: "in" })
            {
                op = CompareOperator.NotIn;
                _index += 2;
            }
            else break;
            rest.Add(new(op, ParseAdditive()));
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest, line);
    }

    private Expr ParseAdditive()
    {
        var left = ParseConcat();
        while (Current.Kind == TokenKind.Operator && Current.Value is "+" or "-")
        {
            var op = Advance();
            left = new BinaryExpr(op.Value == "+" ? BinaryOperator.Add : BinaryOperator.Subtract, left, ParseConcat(), op.Line);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMultiplicative();
        while (Current is { Kind: TokenKind.Operator, Value: "~" })
        {
            int line = Advance().Line;
            left = new BinaryExpr(BinaryOperator.Concat, left, ParseMultiplicative(), line);
        }
        return left;
    }

    private Expr ParseMultiplicative()
    {
        var left = ParsePower();
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var op = Advance();
            var kind = op.Value switch
            {
                "*" => BinaryOperator.Multiply,
                "/" => BinaryOperator.Divide,
                "//" => BinaryOperator.FloorDivide,
                _ => BinaryOperator.Modulo,
            };
            left = new BinaryExpr(kind, left, ParsePower(), op.Line);
        }
        return left;
    }

    private Expr ParsePower()
    {
        var left = ParseUnary(withFilters: true);
        while (Current is { Kind: TokenKind.Operator, Value: "**" })
        {
            int line = Advance().Line;
            left = new BinaryExpr(BinaryOperator.Power, left, ParseUnary(withFilters: true), line);
        }
        return left;
    }

    /// <summary>Jinja applies a sign to the bare operand, and filters to the signed value: <c>-x|abs</c> is <c>abs(-x)</c>.</summary>
    private Expr ParseUnary(bool withFilters)
    {
        EnterNesting();
        var token = Current;
        Expr expr;
        if (token.Kind == TokenKind.Operator && token.Value is "-" or "+")
        {
            Advance();
            expr = new UnaryExpr(token.Value == "-" ? UnaryOperator.Negate : UnaryOperator.Plus, ParseUnary(withFilters: false), token.Line);
        }
        else expr = ParsePrimary();
        expr = ParsePostfix(expr);
        if (withFilters) expr = ParseFiltersAndTests(expr);
        _nesting--;
        return expr;
    }

    private Expr ParsePrimary()
    {
        var token = Advance();
        switch (token.Kind)
        {
            case TokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new LiteralExpr(true, token.Line),
                    "false" or "False" => new LiteralExpr(false, token.Line),
                    "none" or "None" => new LiteralExpr(null, token.Line),
                    _ => new NameExpr(token.Value, token.Line),
                };
            case TokenKind.String:
                // Adjacent string literals join, as in Python.
                string text = token.Value;
                while (Current.Kind == TokenKind.String) text += Advance().Value;
                return new LiteralExpr(text, token.Line);
            case TokenKind.Integer:
                return new LiteralExpr(long.Parse(token.Value, CultureInfo.InvariantCulture), token.Line);
            case TokenKind.Float:
                return new LiteralExpr(double.Parse(token.Value, NumberStyles.Float, CultureInfo.InvariantCulture), token.Line);
            case TokenKind.Operator when token.Value == "(":
                if (SkipOperator(")")) return new ListExpr([], IsTuple: true, token.Line);
                var inner = ParseExpression();
                if (Current is { Kind: TokenKind.Operator, Value: "," })
                {
                    var items = new List<Expr> { inner };
                    while (SkipOperator(",") && !(Current is { Kind: TokenKind.Operator, Value: ")" })) items.Add(ParseExpression());
                    inner = new ListExpr(items, IsTuple: true, token.Line);
                }
                ExpectOperator(")");
                return inner;
            case TokenKind.Operator when token.Value == "[":
                return new ListExpr(ParseSequence("]"), IsTuple: false, token.Line);
            case TokenKind.Operator when token.Value == "{":
                var entries = new List<KeyValuePair<Expr, Expr>>();
                while (!SkipOperator("}"))
                {
                    if (entries.Count > 0)
                    {
                        ExpectOperator(",");
                        if (SkipOperator("}")) break;
                    }
                    var key = ParseExpression();
                    ExpectOperator(":");
                    entries.Add(new(key, ParseExpression()));
                }
                return new DictExpr(entries, token.Line);
            default:
                _index--;
                throw Unexpected(token, "an expression");
        }
    }

    /// <summary>Comma-separated expressions up to <paramref name="closer"/>, a trailing comma allowed.</summary>
    private List<Expr> ParseSequence(string closer)
    {
        var items = new List<Expr>();
        while (!SkipOperator(closer))
        {
            if (items.Count > 0)
            {
                ExpectOperator(",");
                if (SkipOperator(closer)) break;
            }
            items.Add(ParseExpression());
        }
        return items;
    }

    private Expr ParsePostfix(Expr expr)
    {
        while (Current.Kind == TokenKind.Operator)
        {
            var token = Current;
            if (token.Value == ".")
            {
                Advance();
                var name = Advance();
                if (name.Kind == TokenKind.Name) expr = new AttributeExpr(expr, name.Value, token.Line);
                else if (name.Kind == TokenKind.Integer) expr = new IndexExpr(expr, new LiteralExpr(long.Parse(name.Value, CultureInfo.InvariantCulture), name.Line), token.Line);
                else throw Unexpected(name, "an attribute name");
            }
            else if (token.Value == "[")
            {
                Advance();
                expr = ParseSubscript(expr, token.Line);
            }
            else if (token.Value == "(")
            {
                Advance();
                expr = new CallExpr(expr, ParseCallArguments(), token.Line);
            }
            else break;
        }
        return expr;
    }

    private Expr ParseSubscript(Expr target, int line)
    {
        // target[] and target[a, b] index with a tuple, as in Python.
        if (SkipOperator("]")) return new IndexExpr(target, new ListExpr([], IsTuple: true, line), line);
        var start = IsOperator(":") ? null : ParseExpression();
        if (start != null && IsOperator(","))
        {
            var items = new List<Expr> { start };
            while (SkipOperator(",")) items.Add(ParseExpression());
            ExpectOperator("]");
            return new IndexExpr(target, new ListExpr(items, IsTuple: true, line), line);
        }
        if (!SkipOperator(":"))
        {
            ExpectOperator("]");
            return new IndexExpr(target, start!, line);
        }
        var stop = IsOperator(":") || IsOperator("]") ? null : ParseExpression();
        Expr? step = null;
        if (SkipOperator(":") && !IsOperator("]")) step = ParseExpression();
        ExpectOperator("]");
        return new SliceExpr(target, start, stop, step, line);
    }

    /// <summary>Arguments after the opening parenthesis, through the closing one: positional first, then <c>name=value</c>.</summary>
    private CallArgumentExprs ParseCallArguments()
    {
        var positional = new List<Expr>();
        var named = new List<KeyValuePair<string, Expr>>();
        while (!SkipOperator(")"))
        {
            if (positional.Count + named.Count > 0)
            {
                ExpectOperator(",");
                if (SkipOperator(")")) break;
            }
            if (Current.Kind == TokenKind.Name && Peek(1) is { Kind: TokenKind.Operator, Value: "=" })
            {
                string name = Advance().Value;
                Advance();
                named.Add(new(name, ParseExpression()));
            }
            else
            {
                if (named.Count > 0) throw ChatTemplateException.At(Current.Line, "positional argument after a keyword argument");
                positional.Add(ParseExpression());
            }
        }
        return new CallArgumentExprs(positional, named);
    }

    private Expr ParseFiltersAndTests(Expr expr)
    {
        while (true)
        {
            if (SkipOperator("|"))
            {
                var nameToken = Expect(TokenKind.Name, "a filter name");
                string name = nameToken.Value;
                while (SkipOperator(".")) name += "." + Expect(TokenKind.Name, "a filter name").Value;
                NoteIfUnknown(name, TemplateEvaluator.JinjaFilterNames, "filter", nameToken.Line);
                var arguments = SkipOperator("(") ? ParseCallArguments() : CallArgumentExprs.None;
                expr = new FilterExpr(expr, name, arguments, nameToken.Line);
            }
            else if (Current is { Kind: TokenKind.Name, Value: "is" })
            {
                int line = Advance().Line;
                bool negated = SkipName("not");
                string name = Expect(TokenKind.Name, "a test name").Value;
                while (SkipOperator(".")) name += "." + Expect(TokenKind.Name, "a test name").Value;
                NoteIfUnknown(name, TemplateEvaluator.JinjaTestNames, "test", line);
                IReadOnlyList<Expr> arguments = [];
                if (SkipOperator("(")) arguments = ParseCallArguments().Positional;
                else if (Current is { Kind: TokenKind.Name, Value: "is" }) throw ChatTemplateException.At(Current.Line, "tests cannot be chained with 'is'");
                else if (StartsBareTestArgument(Current)) arguments = [ParsePostfix(ParsePrimary())];
                expr = new TestExpr(expr, name, arguments, negated, line);
            }
            else return expr;
        }
    }

    private void NoteIfUnknown(string name, HashSet<string> known, string kind, int line)
    {
        if (!_inConditional && !known.Contains(name)) _unknownNames.Add(($"unknown {kind} '{name}'", line));
    }

    /// <summary>Jinja lets a test take one argument without parentheses (<c>x is divisibleby 3</c>, <c>x is sameas none</c>).</summary>
    private static bool StartsBareTestArgument(Token token) => token.Kind switch
    {
        TokenKind.Name => token.Value is not ("else" or "or" or "and"),
        TokenKind.String or TokenKind.Integer or TokenKind.Float => true,
        TokenKind.Operator => token.Value is "[" or "{",
        _ => false,
    };

    private void EnterNesting()
    {
        if (++_nesting > MaxNesting) throw ChatTemplateException.At(Current.Line, $"template nests deeper than {MaxNesting} levels");
        RuntimeHelpers.EnsureSufficientExecutionStack();
    }

    private bool IsOperator(string value) => Current.Kind == TokenKind.Operator && Current.Value == value;

    private bool SkipOperator(string value)
    {
        if (!IsOperator(value)) return false;
        Advance();
        return true;
    }

    private bool SkipName(string value)
    {
        if (Current.Kind != TokenKind.Name || Current.Value != value) return false;
        Advance();
        return true;
    }

    private Token Expect(TokenKind kind, string description)
    {
        if (Current.Kind != kind) throw Unexpected(Current, description);
        return Advance();
    }

    private void ExpectOperator(string value)
    {
        if (!SkipOperator(value)) throw Unexpected(Current, $"'{value}'");
    }

    private void ExpectName(string value)
    {
        if (!SkipName(value)) throw Unexpected(Current, $"'{value}'");
    }

    private void ExpectBlockEnd() => Expect(TokenKind.BlockEnd, "'%}'");

    private static ChatTemplateException Unexpected(Token token, string? expected = null)
    {
        string found = token.Kind switch
        {
            TokenKind.EndOfInput => "end of template",
            TokenKind.BlockEnd => "'%}'",
            TokenKind.VariableEnd => "'}}'",
            TokenKind.BlockStart => "'{%'",
            TokenKind.VariableStart => "'{{'",
            TokenKind.String => "a string",
            TokenKind.Text => "text",
            _ => $"'{token.Value}'",
        };
        return ChatTemplateException.At(token.Line, expected == null ? $"unexpected {found}" : $"expected {expected}, found {found}");
    }
}
