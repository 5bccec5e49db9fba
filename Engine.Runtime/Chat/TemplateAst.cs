namespace Engine.Runtime.Chat;

// The parsed form of a template. Nodes are plain data; TemplateEvaluator gives them meaning. Every node keeps the line
// it came from so that runtime errors can say where.

/// <summary>A statement: something that writes output or changes variables when executed.</summary>
internal abstract record Node(int Line);

internal sealed record TextNode(string Text, int Line) : Node(Line);

/// <summary><c>{{ value }}</c>.</summary>
internal sealed record OutputNode(Expr Value, int Line) : Node(Line);

/// <summary><c>{% if %}</c> with its <c>elif</c> branches in order, then the optional <c>else</c>.</summary>
internal sealed record IfNode(IReadOnlyList<IfBranch> Branches, IReadOnlyList<Node>? Else, int Line) : Node(Line);

internal sealed record IfBranch(Expr Condition, IReadOnlyList<Node> Body);

/// <summary><c>{% for a, b in iterable if filter %}body{% else %}else{% endfor %}</c>.</summary>
internal sealed record ForNode(IReadOnlyList<string> Targets, Expr Iterable, Expr? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node>? Else, int Line) : Node(Line);

/// <summary><c>{% set name = value %}</c>, <c>{% set a, b = pair %}</c>, or <c>{% set name.attribute = value %}</c> on a namespace.</summary>
internal sealed record SetNode(IReadOnlyList<string> Names, string? Attribute, Expr Value, int Line) : Node(Line);

/// <summary><c>{% set name %}body{% endset %}</c>: the rendered body becomes the value.</summary>
internal sealed record SetBlockNode(string Name, IReadOnlyList<Node> Body, int Line) : Node(Line);

internal sealed record MacroNode(string Name, IReadOnlyList<MacroParameter> Parameters, IReadOnlyList<Node> Body, int Line) : Node(Line);

internal sealed record MacroParameter(string Name, Expr? Default);

/// <summary><c>{% break %}</c> or <c>{% continue %}</c>.</summary>
internal sealed record LoopControlNode(bool IsBreak, int Line) : Node(Line);

/// <summary>An expression: something that evaluates to a value.</summary>
internal abstract record Expr(int Line);

internal sealed record LiteralExpr(object? Value, int Line) : Expr(Line);

/// <summary>A list literal <c>[a, b]</c>, or a tuple <c>(a, b)</c>.</summary>
internal sealed record ListExpr(IReadOnlyList<Expr> Items, bool IsTuple, int Line) : Expr(Line);

internal sealed record DictExpr(IReadOnlyList<KeyValuePair<Expr, Expr>> Entries, int Line) : Expr(Line);

internal sealed record NameExpr(string Name, int Line) : Expr(Line);

/// <summary><c>target.name</c>.</summary>
internal sealed record AttributeExpr(Expr Target, string Name, int Line) : Expr(Line);

/// <summary><c>target[index]</c>.</summary>
internal sealed record IndexExpr(Expr Target, Expr Index, int Line) : Expr(Line);

/// <summary><c>target[start:stop:step]</c>, any part optional.</summary>
internal sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);

internal enum UnaryOperator { Not, Negate, Plus }

internal sealed record UnaryExpr(UnaryOperator Operator, Expr Operand, int Line) : Expr(Line);

internal enum BinaryOperator { Add, Subtract, Multiply, Divide, FloorDivide, Modulo, Power, Concat, And, Or }

internal sealed record BinaryExpr(BinaryOperator Operator, Expr Left, Expr Right, int Line) : Expr(Line);

internal enum CompareOperator { Equal, NotEqual, Less, LessOrEqual, Greater, GreaterOrEqual, In, NotIn }

/// <summary><c>first op1 a op2 b ...</c>: a chain, true when every adjacent pair compares true, as in Python.</summary>
internal sealed record CompareExpr(Expr First, IReadOnlyList<KeyValuePair<CompareOperator, Expr>> Rest, int Line) : Expr(Line);

/// <summary><c>target is [not] name(arguments)</c>.</summary>
internal sealed record TestExpr(Expr Target, string Name, IReadOnlyList<Expr> Arguments, bool Negated, int Line) : Expr(Line);

/// <summary><c>target | name(arguments)</c>.</summary>
internal sealed record FilterExpr(Expr Target, string Name, CallArgumentExprs Arguments, int Line) : Expr(Line);

/// <summary><c>callee(arguments)</c>: a function, a macro, or a method when the callee is an attribute.</summary>
internal sealed record CallExpr(Expr Callee, CallArgumentExprs Arguments, int Line) : Expr(Line);

/// <summary><c>then if condition else otherwise</c>; without <c>else</c> the value is undefined when the condition fails.</summary>
internal sealed record ConditionalExpr(Expr Condition, Expr Then, Expr? Otherwise, int Line) : Expr(Line);

internal sealed record CallArgumentExprs(IReadOnlyList<Expr> Positional, IReadOnlyList<KeyValuePair<string, Expr>> Named)
{
    public static readonly CallArgumentExprs None = new([], []);
}
