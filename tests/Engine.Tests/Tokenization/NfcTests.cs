using Engine.Runtime.Tokenization;
using Xunit;

namespace Engine.Tests.Tokenization;

/// <summary>NFC from the engine's own tables (string.Normalize does nothing under InvariantGlobalization).</summary>
public sealed class NfcTests
{
    [Theory]
    [InlineData("plain ASCII", "plain ASCII")]
    [InlineData("cafe\u0301", "caf\u00E9")]
    [InlineData("A\u030Angstro\u0308m", "\u00C5ngstr\u00F6m")]
    [InlineData("\u212B \u2126", "\u00C5 \u03A9")]                 // singletons: Angstrom and Ohm signs
    [InlineData("\u1100\u1161\u11A8", "\uAC01")]                   // Hangul jamo compose arithmetically
    [InlineData("\uAC00\u11A8", "\uAC01")]
    [InlineData("\u0958", "\u0915\u093C")]                         // excluded from composition
    [InlineData("q\u0307\u0323", "q\u0323\u0307")]                 // marks reordered by combining class
    [InlineData("\u1E0B\u0323", "\u1E0D\u0307")]                   // d-dot-above + dot-below: dot-below joins first
    [InlineData("a\u0301\u0301", "\u00E1\u0301")]                  // the second acute is blocked by the first
    [InlineData("\uD834\uDD5E", "\uD834\uDD57\uD834\uDD65")]        // musical half note decomposes, is excluded
    [InlineData("e\u0301\uD83D\uDE42", "\u00E9\uD83D\uDE42")]
    public void Normalizes_to_composed_form(string text, string expected) => Assert.Equal(expected, Nfc.Normalize(text));

    [Fact]
    public void Returns_text_already_below_combining_marks_unchanged() =>
        Assert.Same("Zürich", Nfc.Normalize("Zürich"));
}
