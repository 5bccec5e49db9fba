using System.Globalization;

namespace Engine.Runtime.Tokenization;

/// <summary>SentencePiece byte-fallback pieces: one byte written "&lt;0xE6&gt;" (two upper-case hex digits).</summary>
internal static class BytePiece
{
    public static string Format(byte value) => $"<0x{value:X2}>";

    public static bool TryParse(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }
}
