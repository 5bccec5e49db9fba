using System.Globalization;
using System.Text;

namespace Engine.Runtime.Chat;

internal enum TokenKind { Text, VariableStart, VariableEnd, BlockStart, BlockEnd, Name, String, Integer, Float, Operator, EndOfInput }

/// <summary>A lexed piece of a template: text between tags, a tag delimiter, or a piece of an expression inside a tag.</summary>
internal readonly record struct Token(TokenKind Kind, string Value, int Line);

/// <summary>
/// Splits a template into text and tags and the tags into expression tokens, doing Jinja's whitespace control on the way,
/// with Hugging Face's settings: <c>{%-</c>/<c>-%}</c> (and the <c>{{</c> and <c>{#</c> forms) strip all whitespace on that
/// side; trim_blocks drops the newline right after a block or comment tag; lstrip_blocks drops the spaces and tabs
/// between the start of a line and a block or comment tag; <c>{%+</c>/<c>+%}</c> turn the last two off for one tag.
/// Comments produce no tokens.
/// </summary>
internal sealed class TemplateLexer
{
    private static readonly string[] TwoCharacterOperators = ["//", "**", "==", "!=", "<=", ">="];
    private const string SingleCharacterOperators = "+-*/%~<>=()[]{},.:|";

    private readonly string _source;
    private readonly List<Token> _tokens = [];
    private int _position;
    private int _lineCountedTo;
    private int _line = 1;

    private TemplateLexer(string source)
    {
        // Jinja's lexer sees "\n" for every line break and, without keep_trailing_newline, drops one final newline.
        source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (source.EndsWith('\n')) source = source[..^1];
        _source = source;
    }

    public static List<Token> Tokenize(string source)
    {
        var lexer = new TemplateLexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    private void Run()
    {
        while (_position < _source.Length)
        {
            int tagStart = FindTagStart(_position);
            if (tagStart < 0)
            {
                AddText(_source[_position..], _position);
                break;
            }
            char tagKind = _source[tagStart + 1];
            int contentStart = tagStart + 2;
            char sign = contentStart < _source.Length && _source[contentStart] is '-' or '+' ? _source[contentStart] : '\0';
            string text = _source[_position..tagStart];
            if (sign == '-') text = text.TrimEnd();
            else if (sign != '+' && tagKind != '{') text = StripIndentBeforeBlock(text, lineStarting: _position == 0 || _source[_position - 1] == '\n');
            AddText(text, _position);
            _position = contentStart + (sign == '\0' ? 0 : 1);
            switch (tagKind)
            {
                case '#': SkipComment(tagStart); break;
                case '{': LexTag(tagStart, TokenKind.VariableStart, TokenKind.VariableEnd, "}}"); break;
                default: LexTag(tagStart, TokenKind.BlockStart, TokenKind.BlockEnd, "%}"); break;
            }
        }
        _tokens.Add(new Token(TokenKind.EndOfInput, "", LineAt(_source.Length)));
    }

    private int FindTagStart(int from)
    {
        for (int i = _source.IndexOf('{', from); i >= 0 && i + 1 < _source.Length; i = _source.IndexOf('{', i + 1))
            if (_source[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>lstrip_blocks: the text's last line, if only spaces and tabs stand between its start and the tag, goes.</summary>
    private static string StripIndentBeforeBlock(string text, bool lineStarting)
    {
        int lastLineStart = text.LastIndexOf('\n') + 1;
        if (lastLineStart == text.Length || (lastLineStart == 0 && !lineStarting)) return text;
        for (int i = lastLineStart; i < text.Length; i++)
            if (!char.IsWhiteSpace(text[i])) return text;
        return text[..lastLineStart];
    }

    private void AddText(string text, int at)
    {
        if (text.Length > 0) _tokens.Add(new Token(TokenKind.Text, text, LineAt(at)));
    }

    private void SkipComment(int tagStart)
    {
        int end = _source.IndexOf("#}", _position, StringComparison.Ordinal);
        if (end < 0) throw ChatTemplateException.At(LineAt(tagStart), "unclosed comment '{#'");
        char sign = end > _position && _source[end - 1] is '-' or '+' ? _source[end - 1] : '\0';
        _position = end + 2;
        SkipAfterTag(sign, trimsNewline: true);
    }

    private void LexTag(int tagStart, TokenKind startKind, TokenKind endKind, string closer)
    {
        int openLine = LineAt(tagStart);
        _tokens.Add(new Token(startKind, "", openLine));
        bool isBlock = startKind == TokenKind.BlockStart;
        var openBrackets = new Stack<(char Bracket, int Line)>();
        while (true)
        {
            while (_position < _source.Length && char.IsWhiteSpace(_source[_position])) _position++;
            if (_position >= _source.Length)
            {
                if (openBrackets.TryPeek(out var open))
                    throw ChatTemplateException.At(open.Line, $"unclosed '{open.Bracket}' (expected '{ClosingBracket(open.Bracket)}')");
                throw ChatTemplateException.At(openLine, $"unclosed '{(isBlock ? "{%" : "{{")}' (expected '{closer}')");
            }
            // A "}}" inside brackets closes a dict literal, not the tag ({{ {'a': {'b': 1}} }}), as in Jinja.
            if (isBlock || openBrackets.Count == 0)
            {
                char sign = _source[_position] is '-' or '+' ? _source[_position] : '\0';
                int closerAt = _position + (sign == '\0' ? 0 : 1);
                if ((sign != '+' || isBlock) && string.CompareOrdinal(_source, closerAt, closer, 0, 2) == 0)
                {
                    _tokens.Add(new Token(endKind, "", LineAt(_position)));
                    _position = closerAt + 2;
                    SkipAfterTag(sign, trimsNewline: isBlock);
                    return;
                }
            }
            char c = _source[_position];
            int line = LineAt(_position);
            if (char.IsLetter(c) || c == '_') _tokens.Add(new Token(TokenKind.Name, ReadName(), line));
            else if (char.IsAsciiDigit(c)) _tokens.Add(ReadNumber(line));
            else if (c is '\'' or '"') _tokens.Add(new Token(TokenKind.String, ReadString(line), line));
            else _tokens.Add(new Token(TokenKind.Operator, ReadOperator(line, openBrackets), line));
        }
    }

    /// <summary>After a tag: "-" eats all following whitespace; otherwise trim_blocks eats one newline after block tags.</summary>
    private void SkipAfterTag(char sign, bool trimsNewline)
    {
        if (sign == '-')
            while (_position < _source.Length && char.IsWhiteSpace(_source[_position])) _position++;
        else if (sign != '+' && trimsNewline && _position < _source.Length && _source[_position] == '\n')
            _position++;
    }

    private string ReadName()
    {
        int start = _position;
        while (_position < _source.Length && (char.IsLetterOrDigit(_source[_position]) || _source[_position] == '_')) _position++;
        return _source[start.._position];
    }

    private Token ReadNumber(int line)
    {
        int start = _position;
        SkipDigits();
        bool isFloat = false;
        if (_position + 1 < _source.Length && _source[_position] == '.' && char.IsAsciiDigit(_source[_position + 1]))
        {
            isFloat = true;
            _position++;
            SkipDigits();
        }
        if (_position < _source.Length && _source[_position] is 'e' or 'E')
        {
            int exponent = _position + 1;
            if (exponent < _source.Length && _source[exponent] is '+' or '-') exponent++;
            if (exponent < _source.Length && char.IsAsciiDigit(_source[exponent]))
            {
                isFloat = true;
                _position = exponent;
                SkipDigits();
            }
        }
        string digits = _source[start.._position].Replace("_", "");
        if (isFloat) return new Token(TokenKind.Float, digits, line);
        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            throw ChatTemplateException.At(line, $"integer literal {digits} is too large");
        return new Token(TokenKind.Integer, digits, line);
    }

    private void SkipDigits()
    {
        while (_position < _source.Length && (char.IsAsciiDigit(_source[_position]) || (_source[_position] == '_' && _position + 1 < _source.Length && char.IsAsciiDigit(_source[_position + 1]))))
            _position++;
    }

    /// <summary>A quoted string with Python's escapes, which is how Jinja decodes string literals.</summary>
    private string ReadString(int line)
    {
        char quote = _source[_position++];
        var value = new StringBuilder();
        while (true)
        {
            if (_position >= _source.Length) throw ChatTemplateException.At(line, "unterminated string literal");
            char c = _source[_position++];
            if (c == quote) return value.ToString();
            if (c != '\\' || _position >= _source.Length)
            {
                value.Append(c);
                continue;
            }
            char escaped = _source[_position++];
            switch (escaped)
            {
                case 'n': value.Append('\n'); break;
                case 't': value.Append('\t'); break;
                case 'r': value.Append('\r'); break;
                case '0' or '1' or '2' or '3' or '4' or '5' or '6' or '7': value.Append(ReadOctalEscape(escaped)); break;
                case 'a': value.Append('\a'); break;
                case 'b': value.Append('\b'); break;
                case 'f': value.Append('\f'); break;
                case 'v': value.Append('\v'); break;
                case 'x': value.Append(ReadHexEscape(2, line)); break;
                case 'u': value.Append(ReadHexEscape(4, line)); break;
                case 'U': value.Append(ReadHexEscape(8, line)); break;
                case '\n': break; // a backslash at the end of a line continues the string on the next
                case '\\' or '\'' or '"': value.Append(escaped); break;
                default: value.Append('\\').Append(escaped); break; // Python keeps unknown escapes as written
            }
        }
    }

    private char ReadOctalEscape(char first)
    {
        int code = first - '0';
        for (int i = 0; i < 2 && _position < _source.Length && _source[_position] is >= '0' and <= '7'; i++)
            code = code * 8 + (_source[_position++] - '0');
        return (char)code;
    }

    private string ReadHexEscape(int length, int line)
    {
        if (_position + length > _source.Length
            || !int.TryParse(_source.AsSpan(_position, length), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int code)
            || code > 0x10FFFF || (code is >= 0xD800 and <= 0xDFFF && length == 8))
            throw ChatTemplateException.At(line, $"bad \\{(length == 2 ? 'x' : length == 4 ? 'u' : 'U')} escape in string literal");
        _position += length;
        return code <= 0xFFFF ? ((char)code).ToString() : char.ConvertFromUtf32(code);
    }

    private static char ClosingBracket(char opening) => opening switch { '(' => ')', '[' => ']', _ => '}' };

    private string ReadOperator(int line, Stack<(char Bracket, int Line)> openBrackets)
    {
        foreach (string op in TwoCharacterOperators)
            if (string.CompareOrdinal(_source, _position, op, 0, 2) == 0)
            {
                _position += 2;
                return op;
            }
        char c = _source[_position];
        if (!SingleCharacterOperators.Contains(c)) throw ChatTemplateException.At(line, $"unexpected character '{c}'");
        _position++;
        if (c is '(' or '[' or '{') openBrackets.Push((c, line));
        else if (c is ')' or ']' or '}' && openBrackets.TryPop(out var open) && c != ClosingBracket(open.Bracket))
            throw ChatTemplateException.At(line, $"unexpected '{c}' (expected '{ClosingBracket(open.Bracket)}')");
        return c.ToString();
    }

    /// <summary>The 1-based line of a position; positions are asked for in increasing order, so counting goes forward only.</summary>
    private int LineAt(int position)
    {
        for (; _lineCountedTo < position; _lineCountedTo++)
            if (_source[_lineCountedTo] == '\n') _line++;
        return _line;
    }
}
