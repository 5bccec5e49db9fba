using System.Text;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// GPT-2's byte-to-character table ("bytes_to_unicode"): byte-level BPE vocabularies spell every byte as one
/// printable character: printable Latin-1 bytes stand for themselves, the others (space, controls, ...) are shifted
/// to U+0100 onward, so a space is "Ġ" and a newline "Ċ".
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] CharOfByte = BuildTable();
    private static readonly int[] ByteOfChar = BuildInverse();

    /// <summary>The UTF-8 bytes of <paramref name="text"/>, one alphabet character per byte.</summary>
    public static string Encode(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, static (chars, source) =>
        {
            for (int i = 0; i < source.Length; i++) chars[i] = CharOfByte[source[i]];
        });
    }

    /// <summary>Appends the bytes a token spells; false (nothing appended) when a character is not in the alphabet.</summary>
    public static bool TryAppendBytes(string token, List<byte> bytes)
    {
        foreach (char c in token)
            if (c >= ByteOfChar.Length || ByteOfChar[c] < 0)
                return false;
        foreach (char c in token) bytes.Add((byte)ByteOfChar[c]);
        return true;
    }

    private static char[] BuildTable()
    {
        var table = new char[256];
        int shifted = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = printable ? (char)b : (char)(256 + shifted++);
        }
        return table;
    }

    private static int[] BuildInverse()
    {
        var inverse = new int[256 + 256];
        Array.Fill(inverse, -1);
        for (int b = 0; b < 256; b++) inverse[CharOfByte[b]] = b;
        return inverse;
    }
}
