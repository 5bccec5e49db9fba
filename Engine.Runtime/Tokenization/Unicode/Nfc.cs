using System.Text;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// Unicode Normalization Form C (canonical decomposition, canonical ordering, canonical composition; UAX #15) from
/// the tables in NfcData.cs. The engine runs with InvariantGlobalization, under which string.Normalize leaves
/// non-ASCII text as it is, yet Qwen's tokenizer.json asks for NFC: "e" + U+0301 must become "é" before encoding.
/// </summary>
internal static class Nfc
{
    // Hangul syllables decompose and compose arithmetically (Unicode §3.12).
    private const int SyllableBase = 0xAC00, LeadBase = 0x1100, VowelBase = 0x1161, TrailBase = 0x11A7;
    private const int LeadCount = 19, VowelCount = 21, TrailCount = 28, SyllablesPerLead = VowelCount * TrailCount, SyllableCount = LeadCount * SyllablesPerLead;

    private static readonly Dictionary<int, (int First, int Second)> Decompositions = new();
    private static readonly Dictionary<(int First, int Second), int> Compositions = new();
    private static readonly Dictionary<int, int> CombiningClasses = new();

    static Nfc()
    {
        var excluded = new HashSet<int>(NfcData.CompositionExclusions.ToArray());
        var decompositions = NfcData.Decompositions;
        for (int i = 0; i < decompositions.Length; i += 3)
        {
            int composite = decompositions[i], first = decompositions[i + 1], second = decompositions[i + 2];
            Decompositions[composite] = (first, second);
            if (second != 0 && !excluded.Contains(composite)) Compositions[(first, second)] = composite;
        }
        var classes = NfcData.CombiningClasses;
        for (int i = 0; i < classes.Length; i += 3)
            for (int c = classes[i]; c <= classes[i + 1]; c++)
                CombiningClasses[c] = classes[i + 2];
    }

    public static string Normalize(string text)
    {
        // Below U+0300 nothing combines, and nothing there changes under NFC.
        if (!text.AsSpan().ContainsAnyExceptInRange('\0', '\u02FF')) return text;

        var codePoints = new List<int>(text.Length);
        foreach (var rune in text.EnumerateRunes()) Decompose(rune.Value, codePoints);
        SortCombiningMarks(codePoints);
        Compose(codePoints);

        var normalized = new StringBuilder(text.Length);
        foreach (int c in codePoints) normalized.Append(new Rune(c));
        return normalized.ToString();
    }

    private static void Decompose(int c, List<int> output)
    {
        int syllable = c - SyllableBase;
        if (syllable is >= 0 and < SyllableCount)
        {
            output.Add(LeadBase + syllable / SyllablesPerLead);
            output.Add(VowelBase + syllable % SyllablesPerLead / TrailCount);
            if (syllable % TrailCount != 0) output.Add(TrailBase + syllable % TrailCount);
            return;
        }
        if (!Decompositions.TryGetValue(c, out var parts))
        {
            output.Add(c);
            return;
        }
        Decompose(parts.First, output);
        if (parts.Second != 0) Decompose(parts.Second, output);
    }

    private static int CombiningClass(int c) => CombiningClasses.GetValueOrDefault(c);

    /// <summary>Canonical ordering: within each run of combining marks, a stable sort by combining class.</summary>
    private static void SortCombiningMarks(List<int> codePoints)
    {
        for (int i = 1; i < codePoints.Count; i++)
        {
            int c = codePoints[i], cc = CombiningClass(c);
            if (cc == 0) continue;
            int j = i;
            while (j > 0 && CombiningClass(codePoints[j - 1]) > cc)
            {
                codePoints[j] = codePoints[j - 1];
                j--;
            }
            codePoints[j] = c;
        }
    }

    /// <summary>
    /// Canonical composition: each character joins the last starter unless something between them blocks it (a
    /// mark of the same or a higher class); characters that do not join stay in order.
    /// </summary>
    private static void Compose(List<int> codePoints)
    {
        int starter = -1, kept = 0;
        for (int i = 0; i < codePoints.Count; i++)
        {
            int c = codePoints[i], cc = CombiningClass(c);
            if (starter >= 0)
            {
                bool adjacent = kept == starter + 1;
                if ((adjacent || CombiningClass(codePoints[kept - 1]) < cc) && TryCompose(codePoints[starter], c, out int composite))
                {
                    codePoints[starter] = composite;
                    continue;
                }
            }
            if (cc == 0) starter = kept;
            codePoints[kept++] = c;
        }
        codePoints.RemoveRange(kept, codePoints.Count - kept);
    }

    private static bool TryCompose(int first, int second, out int composite)
    {
        int lead = first - LeadBase, vowel = second - VowelBase, syllable = first - SyllableBase, trail = second - TrailBase;
        if (lead is >= 0 and < LeadCount && vowel is >= 0 and < VowelCount)
        {
            composite = SyllableBase + (lead * VowelCount + vowel) * TrailCount;
            return true;
        }
        if (syllable is >= 0 and < SyllableCount && syllable % TrailCount == 0 && trail is > 0 and < TrailCount)
        {
            composite = first + trail;
            return true;
        }
        return Compositions.TryGetValue((first, second), out composite);
    }
}
