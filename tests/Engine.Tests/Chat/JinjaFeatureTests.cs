using Engine.Runtime.Chat;
using Xunit;

namespace Engine.Tests.Chat;

/// <summary>
/// The template engine piece by piece. Each expected string is what jinja2 3.1, set up as Hugging Face sets it up,
/// renders for the same template and variables.
/// </summary>
public sealed class JinjaFeatureTests
{
    private static readonly ChatMessage[] Conversation =
    [
        new("system", "Be brief."),
        new("user", "Hi there"),
        new("assistant", "Hello!"),
        new("user", "Bye"),
    ];

    private static string Render(string template) =>
        ChatTemplate.Render(template, Conversation, addGenerationPrompt: false, bosToken: "<s>", eosToken: "</s>");

    [Theory]
    // Whitespace
    [InlineData("{% if true %}\nyes\n{% endif %}\nend", "yes\nend")]
    [InlineData("  {% if true %}\n  x\n  {% endif %}\nend", "  x\nend")]
    [InlineData("a  {%- if true -%}  b  {%- endif -%}  c", "abc")]
    [InlineData("a \n {{- 'b' -}} \n c", "abc")]
    [InlineData("  {{ 'x' }}\n", "  x")]
    [InlineData("  {%+ if true %}x{% endif %}", "  x")]
    [InlineData("{% if true +%}\nx{% endif %}", "\nx")]
    [InlineData("a{# note #}b", "ab")]
    [InlineData("line\n  {# comment #}\nnext", "line\nnext")]
    [InlineData("a\n{#- trimmed -#}\nb", "ab")]
    [InlineData("x\n\n", "x\n")]
    [InlineData("{% for m in messages %}\n  {{ m.role }}\n{% endfor %}", "  system\n  user\n  assistant\n  user\n")]
    [InlineData("{%- for m in messages -%}\n  {{ m.role }}\n{%- endfor %}", "systemuserassistantuser")]
    [InlineData("\t{% set x = 1 %}\t{{ x }}", "\t1")]
    // Expressions
    [InlineData("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}", "7 9 64 4")]
    [InlineData("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 1.5 * 2 }} {{ 0.1 + 0.2 }}", "3 -4 1 2 3.5 3.0 0.30000000000000004")]
    [InlineData("{{ 'a' ~ 1 ~ none ~ true }} {{ 'a' + 'b' }} {{ 'ab' * 2 }} {{ [1] + [2] }}", "a1NoneTrue ab abab [1, 2]")]
    [InlineData("{{ 'x' + ' y ' | trim + 'z' }} {{ messages | length - 1 }} {{ not 1 == 2 }}", "xyz 3 True")]
    [InlineData("{{ 'y' if 1 else 'n' }}|{{ 'y' if 0 }}|{{ 'a' if false else 'b' if false else 'c' }}", "y||c")]
    [InlineData("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'ell' in 'hello' }} {{ 'x' not in ['a'] }} {{ 'role' in messages[0] }} {{ 1 == 1.0 }}", "True False True True True True")]
    [InlineData("{{ 1 and 'x' }} {{ 0 or 'y' }} {{ none or 0 }} {{ '' and 1 }}", "x y 0 ")]
    [InlineData("{{ 'it\\'s' }} {{ \"say \\\"hi\\\"\" }} {{ 'tab\\tend' }} {{ '\\u00e9\\x41' }} {{ 'a' 'b' }}", "it's say \"hi\" tab\tend éA ab")]
    [InlineData("{{ [1, 'a', none, true, 2.5] }} {{ {'k': 'v', 'n': [1]} }} {{ (1, 'b') }} {{ (1,) }} {{ none }} {{ false }}", "[1, 'a', None, True, 2.5] {'k': 'v', 'n': [1]} (1, 'b') (1,) None False")]
    [InlineData("{{ messages[0].role }} {{ messages[0]['content'] }} {{ messages[1].nothing }}|{{ messages[9] }}|{{ messages[-1].content }}", "system Be brief. ||Bye")]
    [InlineData("{{ messages[1:] | length }} {{ messages[:1][0].role }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ [1, 2, 3, 4, 5][::2] }} {{ [1, 2, 3][-2:] }} {{ [1, 2, 3, 4, 5][4:1:-1] }}", "3 system el olleh [1, 3, 5] [2, 3] [5, 4, 3]")]
    [InlineData("{{ nothing }}|{{ nothing is defined }}|{{ nothing is undefined }}|{{ nothing | default('d') }}|{% if not nothing %}falsy{% endif %}|{% for x in nothing %}x{% endfor %}|{{ nothing | length }}|{{ nothing == nothing }}", "|False|True|d|falsy||0|True")]
    [InlineData("{{ none.attribute is defined }} {{ messages[0].missing is none }} {{ messages[0].missing is defined }}", "False False False")]
    [InlineData("{{ bos_token }}{{ eos_token }}", "<s></s>")]
    // Filters
    [InlineData("{{ '  x  ' | trim }}|{{ '--x--' | trim('-') }}|{{ 'AbC' | lower }}|{{ 'AbC' | upper }}|{{ 'hELLO wORLD' | capitalize }}|{{ 'hello big-world' | title }}", "x|x|abc|ABC|Hello world|Hello Big-World")]
    [InlineData("{{ 'abc' | length }} {{ [1, 2] | count }} {{ {'a': 1} | length }}", "3 2 1")]
    [InlineData("{{ nothing | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | default('d') }} {{ 0 | d(5) }}", "d  d None 0")]
    [InlineData("{{ {'b': 1, 'a': [1, 2.5, none, true, 'é\"\\n']} | tojson }}", "{\"b\": 1, \"a\": [1, 2.5, null, true, \"é\\\"\\n\"]}")]
    [InlineData("{{ {'b': 1, 'a': {'c': [1, 2]}} | tojson(indent=2) }}", "{\n  \"b\": 1,\n  \"a\": {\n    \"c\": [\n      1,\n      2\n    ]\n  }\n}")]
    [InlineData("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }} {{ 'x' | tojson }} {{ [] | tojson }} {{ 3.0 | tojson }}", "{\"a\": 2, \"b\": 1} \"x\" [] 3.0")]
    [InlineData("{{ messages | map(attribute='role') | join(', ') }}|{{ [1, none, 'a'] | join }}|{{ messages | join('/', attribute='role') }}", "system, user, assistant, user|1Nonea|system/user/assistant/user")]
    [InlineData("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }} {{ messages | rejectattr('role', 'eq', 'user') | list | length }} {{ messages | selectattr('content') | list | length }}", "['Hi there', 'Bye'] 2 4")]
    [InlineData("{{ [1, 2, 3, 4] | select('odd') | list }} {{ [0, 1, '', 'a'] | reject | list }} {{ ['1', '2'] | map('int') | list }}", "[1, 3] [0, ''] [1, 2]")]
    [InlineData("{{ 'xyz' | list }} {{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ 'abc' | first }} {{ [] | first is defined }}", "['x', 'y', 'z'] 3 2 a False")]
    [InlineData("{{ 5 | string }} {{ none | string }} {{ [1] | string }} {{ 'a-b-a' | replace('a', 'x') }} {{ 'a-b-a' | replace('a', 'x', 1) }}", "5 None [1] x-b-x x-b-a")]
    [InlineData("{{ [1, 2, 3] | reverse | list }} {{ 'abc' | reverse }} {{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ messages | sort(attribute='role') | map(attribute='role') | list }}", "[3, 2, 1] cba [1, 2, 3] ['A', 'b', 'c'] [3, 2, 1] ['assistant', 'system', 'user', 'user']")]
    [InlineData("{{ [1, 2, 2, 'A', 'a'] | unique | list }} {{ {'k': 1, 'j': 2} | items | list }} {{ '42' | int + 1 }} {{ 'x' | int }} {{ 3.9 | int }} {{ '2.5' | float }} {{ -3 | abs }}", "[1, 2, 'A'] [('k', 1), ('j', 2)] 43 0 3 2.5 3")]
    [InlineData("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'x' | safe }}", "a\n  b\n\n  c|  a\n  b|x")]
    // Methods
    [InlineData("{{ '  x  '.strip() }}|{{ '\\n\\nx\\n'.strip('\\n') }}|{{ 'xxy'.lstrip('x') }}|{{ '  y  '.rstrip() }}|", "x|x|y|  y|")]
    [InlineData("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'abc'.startswith('b') }}", "True True False")]
    [InlineData("{{ ' a  b c '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(' ', 1) }} {{ '</think>x'.split('</think>')[-1] }}", "['a', 'b', 'c'] ['a', 'b', '', 'c'] ['a', 'b c'] x")]
    [InlineData("{{ 'Hi'.upper() }} {{ 'Hi'.lower() }} {{ \"they're here\".title() }} {{ 'hELLO'.capitalize() }} {{ 'a-b-c'.replace('-', '+') }} {{ 'a-b-c'.replace('-', '', 1) }} {{ ', '.join(['a', 'b']) }}", "HI hi They'Re Here Hello a+b+c ab-c a, b")]
    [InlineData("{% set d = {'k1': 'v1', 'k2': 'v2'} %}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {{ d.keys() | list }} {{ d.values() | list }} {{ d.get('k1') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }}", "k1=v1;k2=v2; ['k1', 'k2'] ['v1', 'v2'] v1 dflt None")]
    // Loops
    [InlineData("{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", "104TrueFalse4;213FalseFalse4;322FalseFalse4;431FalseTrue4;")]
    [InlineData("{% for m in messages if m.role == 'user' %}{{ loop.index }}:{{ m.content }}{{ ',' if not loop.last }}{% endfor %}", "1:Hi there,2:Bye")]
    [InlineData("{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] %}x{% else %}empty{% endfor %}", "empty|x")]
    [InlineData("{% for x in range(10) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", "023")]
    [InlineData("{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %} {% for c in 'hey' %}{{ c }}.{% endfor %}", "ab h.e.y.")]
    [InlineData("{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}", "1x1 1y2 1|2x1 2y2 2|")]
    [InlineData("{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else '-' }}>{{ loop.nextitem.role if loop.nextitem is defined else '-' }} {{ loop.cycle('odd', 'even') }};{% endfor %}", "->user odd;system>assistant even;user>user odd;assistant>- even;")]
    [InlineData("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %} {% for (a, b) in [(1, 'x')] %}{{ b }}{{ a }}{% endfor %}", "37 x1")]
    [InlineData("{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }}", "[0, 1, 2] [1, 4, 7] [5, 3, 1]")]
    // Scoping
    [InlineData("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", "21")]
    [InlineData("{% if true %}{% set y = 5 %}{% endif %}{{ y }}", "5")]
    [InlineData("{% set ns = namespace(count=0, found=false) %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% if m.role == 'assistant' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }}", "4 True")]
    [InlineData("{% set ns = namespace() %}{% set ns.x = 'late' %}{{ ns.x }} {{ namespace({'a': 1}, b=2).b }}", "late 2")]
    [InlineData("{% set captured %}[{{ 1 + 1 }}]{% endset %}{{ captured }}{{ captured | length }}", "[2]3")]
    [InlineData("{% set a, b = 1, 2 %}{{ b }}{{ a }} {% set t = 1, 'x' %}{{ t }}", "21 (1, 'x')")]
    [InlineData("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} {{ greet(name='X') }}", "Hello, Bob! Hi, Al! Hello, X!")]
    [InlineData("{% macro show(m) %}{{ m.role | upper }}{% endmacro %}{% for m in messages %}{{ show(m) }} {% endfor %}", "SYSTEM USER ASSISTANT USER ")]
    [InlineData("{% macro count(n) %}{% if n > 0 %}{{ n }}{{ count(n - 1) }}{% endif %}{% endmacro %}{{ count(3) }}", "321")]
    [InlineData("{{ dict(a=1, b='x') }} {{ 'raise_exception' is defined }} {{ raise_exception is callable }}", "{'a': 1, 'b': 'x'} True True")]
    [InlineData("{% generation %}kept{% endgeneration %}", "kept")]
    [InlineData("{% if true: %}colon{% endif %}", "colon")]
    // Tests
    [InlineData("{{ 'a' is string }} {{ 1 is string }} {{ {} is mapping }} {{ [] is mapping }} {{ [] is iterable }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ 'a' is sequence }} {{ messages is sequence }}", "True False True False True True False True True")]
    [InlineData("{{ none is none }} {{ 0 is none }} {{ 1 is number }} {{ 1.5 is number }} {{ 1 is integer }} {{ 1.0 is integer }} {{ 1.0 is float }} {{ true is boolean }}", "True False True True True False True True")]
    [InlineData("{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }} {{ false is false }} {{ true is true }} {{ 1 is true }}", "True True True False True True False")]
    [InlineData("{{ 1 is equalto 1 }} {{ 1 is eq 2 }} {{ 1 is ne 2 }} {{ 2 is in [1, 2] }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'x' is not defined }} {{ 2 is gt 1 }}", "True False True True True True False True")]
    public void RendersAsJinjaDoes(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Fact]
    public void AddGenerationPrompt_IsABool()
    {
        const string template = "{{ add_generation_prompt }}{% if add_generation_prompt %}!{% endif %}";
        Assert.Equal("True!", ChatTemplate.Render(template, [], addGenerationPrompt: true, null, null));
        Assert.Equal("False", ChatTemplate.Render(template, [], addGenerationPrompt: false, null, null));
    }

    [Fact]
    public void ToolsAndDocuments_AreUndefined()
    {
        Assert.Equal("False False |", Render("{{ tools is defined }} {{ documents is defined }} {% if tools %}tools{% endif %}|"));
    }

    [Fact]
    public void StrftimeNow_FormatsTheLocalTime()
    {
        Assert.Equal(DateTime.Now.Year.ToString(System.Globalization.CultureInfo.InvariantCulture), Render("{{ strftime_now('%Y') }}"));
    }

    [Fact]
    public void Strftime_SupportsTheDirectivesDateLinesUse()
    {
        var time = new DateTime(2024, 7, 6, 14, 5, 9);
        Assert.Equal("06 Jul 2024|6 July Saturday|14:05:09 02PM|188 24 %|%Q", TemplateEvaluator.Strftime(time, "%d %b %Y|%-d %B %A|%H:%M:%S %I%p|%j %y %%|%Q"));
    }

    [Fact]
    public void RaiseException_CarriesTheTemplatesMessageExactly()
    {
        var error = Assert.Throws<ChatTemplateException>(() => Render("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"));
        Assert.Equal("System role not supported", error.Message);
        Assert.True(error.RaisedByTemplate);
    }

    [Fact]
    public void Namespace_CarriesStateOutOfALoop_WhereAPlainSetDoesNot()
    {
        const string template =
            "{% set last = 'none' %}{% set ns = namespace(last='none') %}" +
            "{% for m in messages %}{% set last = m.role %}{% set ns.last = m.role %}{% endfor %}{{ last }} {{ ns.last }}";
        Assert.Equal("none user", Render(template));
    }

    [Fact]
    public void SetOnAnAttribute_OfSomethingOtherThanANamespace_Fails()
    {
        var error = Assert.Throws<ChatTemplateException>(() => Render("{% set d = {} %}{% set d.x = 1 %}"));
        Assert.Equal("chat template: cannot set attribute 'x' of 'd', which is not a namespace() at line 1", error.Message);
        Assert.False(error.RaisedByTemplate);
    }
}
