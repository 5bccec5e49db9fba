using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// A split pattern from tokenizer.json run by .NET's Regex over code points. .NET matches UTF-16 units, so a letter
/// or digit outside the Basic Multilingual Plane (a surrogate pair: 𝐀, 𠀀, 𝟏) would match neither \p{L} nor \p{N},
/// and \p{N}{1,3} would count halves. Text holding surrogate pairs is therefore matched through a stand-in with one
/// BMP character of the same Unicode category per code point, and the match positions are mapped back. The patterns
/// only test categories, whitespace and ASCII literals, which the stand-ins preserve.
/// </summary>
internal sealed class CodePointRegex
{
    private static readonly char[] StandInByCategory = FindStandIns();
    private readonly Regex _regex;

    public CodePointRegex(Regex regex) => _regex = regex;

    /// <summary>The (start, end) UTF-16 ranges of the successive matches in <paramref name="text"/>.</summary>
    public List<(int Start, int End)> Matches(string text)
    {
        var ranges = new List<(int Start, int End)>();
        if (!HasSurrogatePair(text))
        {
            for (var match = _regex.Match(text); match.Success; match = match.NextMatch())
                ranges.Add((match.Index, match.Index + match.Length));
            return ranges;
        }

        var (standIn, offsets) = BuildStandIn(text);
        for (var match = _regex.Match(standIn); match.Success; match = match.NextMatch())
            ranges.Add((offsets[match.Index], offsets[match.Index + match.Length]));
        return ranges;
    }

    private static bool HasSurrogatePair(string text)
    {
        for (int i = 0; i + 1 < text.Length; i++)
            if (char.IsSurrogatePair(text[i], text[i + 1]))
                return true;
        return false;
    }

    /// <summary>One character per code point, and for each stand-in index the offset in the text (plus the end).</summary>
    private static (string StandIn, int[] Offsets) BuildStandIn(string text)
    {
        var standIn = new StringBuilder(text.Length);
        var offsets = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length;)
        {
            offsets.Add(i);
            if (Rune.TryGetRuneAt(text, i, out var rune) && rune.Utf16SequenceLength == 2)
            {
                standIn.Append(StandInByCategory[(int)Rune.GetUnicodeCategory(rune)]);
                i += 2;
            }
            else
            {
                standIn.Append(text[i]);
                i++;
            }
        }
        offsets.Add(text.Length);
        return (standIn.ToString(), offsets.ToArray());
    }

    /// <summary>For each category, its first character above ASCII (clear of the patterns' ASCII literals).</summary>
    private static char[] FindStandIns()
    {
        var standIns = new char[Enum.GetValues<UnicodeCategory>().Length];
        for (int c = 0xFFFF; c >= 0x80; c--)
            if (!char.IsSurrogate((char)c))
                standIns[(int)char.GetUnicodeCategory((char)c)] = (char)c;
        return standIns;
    }
}
