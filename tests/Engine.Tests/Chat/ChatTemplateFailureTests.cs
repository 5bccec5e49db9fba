using Engine.Runtime.Chat;
using Xunit;

namespace Engine.Tests.Chat;

/// <summary>Malformed and hostile templates fail with a <see cref="ChatTemplateException"/> that says what and where.</summary>
public sealed class ChatTemplateFailureTests
{
    private static readonly ChatMessage[] Conversation = [new("system", "Be brief."), new("user", "Hi there")];

    private static string Render(string template) =>
        ChatTemplate.Render(template, Conversation, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>");

    private static string ErrorOf(string template) => Assert.Throws<ChatTemplateException>(() => Render(template)).Message;

    [Theory]
    [InlineData("{{ messages | foo }}", "chat template: unknown filter 'foo' at line 1")]
    [InlineData("line one\nline two\n{{ messages | foo }}", "chat template: unknown filter 'foo' at line 3")]
    [InlineData("{{ 1 is frobbed }}", "chat template: unknown test 'frobbed' at line 1")]
    [InlineData("{% if true %}\nno end", "chat template: '{% if %}' from line 1 is never closed (expected '{% endif %}') at line 2")]
    [InlineData("{% for m in messages %}{{ m }}", "chat template: '{% for %}' from line 1 is never closed (expected '{% endfor %}') at line 1")]
    [InlineData("text\n{% endfor %}", "chat template: unexpected '{% endfor %}' at line 2")]
    [InlineData("{% if true %}{% endfor %}", "chat template: unexpected '{% endfor %}' at line 1")]
    [InlineData("{% frobnicate %}", "chat template: unknown tag 'frobnicate' at line 1")]
    [InlineData("{% include 'other.jinja' %}", "chat template: unknown tag 'include' at line 1")]
    [InlineData("{{ 1 + }}", "chat template: expected an expression, found '}}' at line 1")]
    [InlineData("{{ 'unterminated }}", "chat template: unterminated string literal at line 1")]
    [InlineData("a\n{{ messages", "chat template: unclosed '{{' (expected '}}') at line 2")]
    [InlineData("{# never closed", "chat template: unclosed comment '{#' at line 1")]
    [InlineData("{{ [1, 2 }}", "chat template: unexpected '}' (expected ']') at line 1")]
    [InlineData("{{ (1 + 2", "chat template: unclosed '(' (expected ')') at line 1")]
    [InlineData("{% set x = [1, 2 %}", "chat template: expected ',', found '%}' at line 1")]
    [InlineData("{% set = 1 %}", "chat template: expected a variable name, found '=' at line 1")]
    [InlineData("{% break %}", "chat template: 'break' outside of a loop at line 1")]
    [InlineData("{{ 1 $ 2 }}", "chat template: unexpected character '$' at line 1")]
    [InlineData("{% for x in messages recursive %}{% endfor %}", "chat template: recursive loops are not supported at line 1")]
    [InlineData("{{ x is defined is defined }}", "chat template: tests cannot be chained with 'is' at line 1")]
    public void MalformedTemplate_FailsWhileParsing(string template, string message)
    {
        Assert.Equal(message, ErrorOf(template));
    }

    [Theory]
    [InlineData("{% if messages %}{{ 1 | foo }}{% endif %}", "chat template: unknown filter 'foo' at line 1")]
    [InlineData("{{ [1] | groupby('x') }}", "chat template: filter 'groupby' is not supported at line 1")]
    [InlineData("{{ nothing.attribute }}", "chat template: 'nothing' is undefined at line 1")]
    [InlineData("{{ messages[0].missing.deeper }}", "chat template: 'dict object' has no attribute 'missing' at line 1")]
    [InlineData("{{ nothing + 1 }}", "chat template: 'nothing' is undefined at line 1")]
    [InlineData("{{ nothing() }}", "chat template: 'nothing' is undefined at line 1")]
    [InlineData("{{ 'a' + 1 }}", "chat template: unsupported operand types for +: 'str' and 'int' at line 1")]
    [InlineData("{{ 1 / 0 }}", "chat template: division by zero at line 1")]
    [InlineData("{{ 1 < 'a' }}", "chat template: '<' not supported between instances of 'int' and 'str' at line 1")]
    [InlineData("{{ 9223372036854775807 + 1 }}", "chat template: integer overflow at line 1")]
    [InlineData("{% for a, b in [1] %}{% endfor %}", "chat template: cannot unpack 'int' into 2 names at line 1")]
    [InlineData("{% for x in 5 %}{% endfor %}", "chat template: 'int' object is not iterable at line 1")]
    [InlineData("\n\n{{ 'x'.strip(1) }}", "chat template: strip: expected a string or none, not int at line 3")]
    [InlineData("{{ 'x'.nope() }}", "chat template: 'str object' has no attribute 'nope' at line 1")]
    [InlineData("{{ 'x' | tojson(indent=[]) }}", "chat template: tojson: indent must be an integer or a string at line 1")]
    [InlineData("{{ namespace() | tojson }}", "chat template: Object of type Namespace is not JSON serializable at line 1")]
    [InlineData("{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}", "chat template: macro 'f' takes not more than 1 argument(s) at line 1")]
    [InlineData("{{ 'a' | trim(chars='a', extra=1) }}", "chat template: trim got an unexpected keyword argument 'extra' at line 1")]
    public void FailingExpression_FailsWhenRendered(string template, string message)
    {
        Assert.Equal(message, ErrorOf(template));
    }

    [Fact]
    public void UnknownFilterInABranchNotTaken_IsNotAnError()
    {
        // Jinja defers unknown names inside conditionals to when they are reached, and so templates rely on it.
        Assert.Equal("", Render("{% if tools %}{{ tools | some_future_filter }}{% endif %}"));
        Assert.Equal("x", Render("{{ 'x' if true else (1 | some_future_filter) }}"));
    }

    [Theory]
    [InlineData("{% for i in range(100000) %}{{ 'xxxxxxxxxxxxxxxxxxxx' }}{% endfor %}", "output exceeds 1,000,000 characters")]
    [InlineData("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", "loops run more than 100,000 iterations")]
    [InlineData("{% for m in messages * 60000 %}{% endfor %}", "loops run more than 100,000 iterations")]
    [InlineData("{% for i in range(10 ** 12) %}{% endfor %}", "range() of more than 100,000 items")]
    [InlineData("{{ 'x' * 2000000 }}", "a value grows past 1,000,000 characters or items")]
    [InlineData("{{ 'ab' * 9223372036854775807 }}", "a value grows past 1,000,000 characters or items")]
    [InlineData("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "a value grows past 1,000,000 characters or items")]
    [InlineData("{% set big = 'x' * 900000 %}{% for i in range(1000) %}{% set copy = big ~ i %}{% endfor %}", "rendering builds more than 50,000,000 characters and items")]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "macros call each other more than 100 deep")]
    public void RunawayTemplate_IsStopped(string template, string reason)
    {
        string message = ErrorOf(template);
        Assert.StartsWith("chat template: " + reason, message);
    }

    [Fact]
    public void EmptySequenceRepeatedHugely_IsEmptyAtOnce()
    {
        Assert.Equal("0 0", Render("{{ ('' * 9223372036854775807) | length }} {{ ([] * 9223372036854775807) | length }}"));
    }

    [Fact]
    public void DeeplyNestedTemplate_IsRefusedWhileParsing()
    {
        string parentheses = "{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}";
        Assert.Equal("chat template: template nests deeper than 100 levels at line 1", ErrorOf(parentheses));
        string blocks = string.Concat(Enumerable.Repeat("{% if true %}", 500)) + string.Concat(Enumerable.Repeat("{% endif %}", 500));
        Assert.Equal("chat template: template nests deeper than 100 levels at line 1", ErrorOf(blocks));
        string conditionals = "{{ 1" + string.Concat(Enumerable.Repeat(" if false else 1", 5000)) + " }}";
        Assert.Equal("chat template: template nests deeper than 100 levels at line 1", ErrorOf(conditionals));
    }

    [Fact]
    public void VeryLongExpressionChain_FailsInsteadOfOverflowingTheStack()
    {
        // A left-leaning chain parses without recursion but evaluates with it, one level per operator.
        string chain = "{{ 1" + string.Concat(Enumerable.Repeat(" + 1", 200_000)) + " }}";
        Assert.Equal("chat template: nested too deeply to render", ErrorOf(chain));
    }

    [Fact]
    public void NamespaceHoldingItself_PrintsWithoutRecursingForever()
    {
        Assert.Equal("<Namespace {'me': ...}>", Render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"));
    }

    [Fact]
    public void MutatedRealTemplates_RenderOrFailCleanly()
    {
        // Random damage to real templates must end in output or a ChatTemplateException: never another exception or a hang.
        string[] templates = [RealTemplates.Qwen25, RealTemplates.Qwen3, RealTemplates.Llama31, RealTemplates.Llama2, RealTemplates.Mistral02, RealTemplates.SmolLM2];
        string[] insertions = ["{", "}", "%", "#", "-", "(", ")", "[", "]", "'", "\"", ".", ",", ":", "|", "~", "=", "*", " ", "\n", "{{", "}}", "{%", "%}", "if ", "endif", "for ", " in ", "not ", " is ", "loop."];
        var random = new Random(20240726);
        ChatMessage[] conversation = [new("system", "S"), new("user", "U"), new("assistant", "<think>\nr\n</think>\n\nA"), new("user", "V")];
        int rendered = 0, failed = 0;
        for (int i = 0; i < 3000; i++)
        {
            string template = templates[random.Next(templates.Length)];
            for (int edits = random.Next(1, 4); edits > 0; edits--)
            {
                int at = random.Next(template.Length + 1);
                template = random.Next(3) switch
                {
                    0 => template.Remove(at, Math.Min(random.Next(1, 6), template.Length - at)),
                    1 => template.Insert(at, insertions[random.Next(insertions.Length)]),
                    _ => template.Insert(at, template.Substring(random.Next(template.Length), 1)),
                };
            }
            try
            {
                ChatTemplate.Render(template, conversation, addGenerationPrompt: true, "<s>", "</s>");
                rendered++;
            }
            catch (ChatTemplateException)
            {
                failed++;
            }
        }
        Assert.True(rendered > 0 && failed > 0, $"rendered {rendered}, failed {failed}");
    }
}
