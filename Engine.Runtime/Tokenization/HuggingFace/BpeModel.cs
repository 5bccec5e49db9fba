using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace Engine.Runtime.Tokenization;

/// <summary>
/// The "model" of a tokenizer.json of type BPE: the vocabulary and the ranked merges, applied to one pre-tokenized
/// piece at a time exactly as Hugging Face tokenizers' Word::merge_all does (always the lowest-ranked adjacent
/// pair, the leftmost among equals), with ignore_merges (Llama 3: a piece that is itself a token stays whole),
/// byte_fallback (SentencePiece-style files: unknown characters as &lt;0xNN&gt; byte tokens) and unk_token.
/// </summary>
internal sealed class BpeModel
{
    private const int CacheCapacity = 10_000;
    private const int LongestCachedPiece = 256;

    private readonly Dictionary<string, int> _vocabulary;
    private readonly Dictionary<long, (int Rank, int Merged)> _merges;
    private readonly int? _unknownId;
    private readonly bool _fuseUnknown;
    private readonly bool _byteFallback;
    private readonly bool _ignoreMerges;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    private BpeModel(Dictionary<string, int> vocabulary, Dictionary<long, (int Rank, int Merged)> merges, int? unknownId, bool fuseUnknown, bool byteFallback, bool ignoreMerges)
    {
        _vocabulary = vocabulary;
        _merges = merges;
        _unknownId = unknownId;
        _fuseUnknown = fuseUnknown;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
    }

    public IReadOnlyDictionary<string, int> Vocabulary => _vocabulary;

    /// <exception cref="InvalidDataException">A malformed vocabulary or merge list, or options this class does not implement.</exception>
    public static BpeModel FromJson(JsonElement model, JsonFile file)
    {
        if (!string.IsNullOrEmpty(file.OptionalString(model, "continuing_subword_prefix")) || !string.IsNullOrEmpty(file.OptionalString(model, "end_of_word_suffix")))
            throw file.Error("BPE continuing_subword_prefix / end_of_word_suffix are not supported (byte-level and SentencePiece-style BPE do not use them)");

        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in file.RequiredMember(model, "vocab", JsonValueKind.Object).EnumerateObject())
            vocabulary[entry.Name] = file.TokenId(entry.Value, $"vocab[{entry.Name}]");

        var merges = new Dictionary<long, (int Rank, int Merged)>();
        int rank = 0;
        foreach (var merge in file.RequiredMember(model, "merges", JsonValueKind.Array).EnumerateArray())
        {
            var (left, right) = ParseMerge(merge, rank, file);
            int leftId = IdOrError(left), rightId = IdOrError(right), mergedId = IdOrError(left + right);
            merges[PairKey(leftId, rightId)] = (rank++, mergedId);
        }

        int? unknownId = null;
        if (file.OptionalString(model, "unk_token") is { } unknown)
            unknownId = vocabulary.TryGetValue(unknown, out int id) ? id : throw file.Error($"unk_token '{unknown}' is not in the vocabulary");

        return new BpeModel(vocabulary, merges, unknownId, file.OptionalBool(model, "fuse_unk") ?? false,
            file.OptionalBool(model, "byte_fallback") ?? false, file.OptionalBool(model, "ignore_merges") ?? false);

        int IdOrError(string token) =>
            vocabulary.TryGetValue(token, out int id) ? id : throw file.Error($"merge {rank} uses '{token}', which is not in the vocabulary");
    }

    /// <summary>A merge is "left right" (one space) in older files and ["left", "right"] in newer ones.</summary>
    private static (string Left, string Right) ParseMerge(JsonElement merge, int rank, JsonFile file)
    {
        if (merge.ValueKind == JsonValueKind.String)
        {
            string text = merge.GetString()!;
            int space = text.IndexOf(' ');
            if (space > 0 && space < text.Length - 1) return (text[..space], text[(space + 1)..]);
        }
        else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
            && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
        {
            return (merge[0].GetString()!, merge[1].GetString()!);
        }
        throw file.Error($"merge {rank} is neither \"left right\" nor [\"left\", \"right\"]: {merge.GetRawText()}");
    }

    private static long PairKey(int left, int right) => (long)left << 32 | (uint)right;

    /// <summary>Appends the ids of one pre-tokenized piece.</summary>
    public void Encode(string piece, List<int> ids)
    {
        if (piece.Length == 0) return;
        if (_ignoreMerges && _vocabulary.TryGetValue(piece, out int whole))
        {
            ids.Add(whole);
            return;
        }
        if (_cache.TryGetValue(piece, out var cached))
        {
            ids.AddRange(cached);
            return;
        }
        int[] encoded = Merge(InitialSymbols(piece));
        if (piece.Length <= LongestCachedPiece && _cache.Count < CacheCapacity) _cache.TryAdd(piece, encoded);
        ids.AddRange(encoded);
    }

    /// <summary>One symbol per character; unknown characters as byte tokens, else the unknown token, else dropped.</summary>
    private List<int> InitialSymbols(string piece)
    {
        var symbols = new List<int>(piece.Length);
        bool previousUnknown = false;
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var rune in piece.EnumerateRunes())
        {
            if (_vocabulary.TryGetValue(rune.ToString(), out int id))
            {
                symbols.Add(id);
                previousUnknown = false;
                continue;
            }
            if (_byteFallback && TryAddByteTokens(rune, utf8, symbols))
            {
                previousUnknown = false;
                continue;
            }
            if (_unknownId is int unknown && !(_fuseUnknown && previousUnknown))
            {
                symbols.Add(unknown);
                previousUnknown = true;
            }
        }
        return symbols;
    }

    private bool TryAddByteTokens(Rune rune, Span<byte> utf8, List<int> symbols)
    {
        int length = rune.EncodeToUtf8(utf8);
        Span<int> byteIds = stackalloc int[4];
        for (int i = 0; i < length; i++)
            if (!_vocabulary.TryGetValue(BytePiece.Format(utf8[i]), out byteIds[i]))
                return false;
        foreach (int id in byteIds[..length]) symbols.Add(id);
        return true;
    }

    /// <summary>Applies merges, lowest rank first and leftmost among equal ranks, until no adjacent pair has one.</summary>
    private int[] Merge(List<int> symbols)
    {
        int count = symbols.Count;
        var ids = symbols.ToArray();
        var previous = new int[count];
        var next = new int[count];
        var removed = new bool[count];
        var queue = new PriorityQueue<(int Position, int Merged), (int Rank, int Position)>();
        for (int i = 0; i < count; i++)
        {
            previous[i] = i - 1;
            next[i] = i + 1 < count ? i + 1 : -1;
            if (i + 1 < count) Enqueue(i, i + 1);
        }

        while (queue.TryDequeue(out var candidate, out _))
        {
            int position = candidate.Position, right = next[position];
            // Entries go stale when a neighbour merged first; the pair must still be there and still make this token.
            if (removed[position] || right < 0 || !_merges.TryGetValue(PairKey(ids[position], ids[right]), out var merge) || merge.Merged != candidate.Merged)
                continue;
            ids[position] = merge.Merged;
            removed[right] = true;
            next[position] = next[right];
            if (next[position] >= 0) previous[next[position]] = position;
            if (previous[position] >= 0) Enqueue(previous[position], position);
            if (next[position] >= 0) Enqueue(position, next[position]);
        }

        var result = new List<int>(count);
        for (int i = 0; i < count; i++)
            if (!removed[i]) result.Add(ids[i]);
        return [.. result];

        void Enqueue(int left, int right)
        {
            if (_merges.TryGetValue(PairKey(ids[left], ids[right]), out var merge))
                queue.Enqueue((left, merge.Merged), (merge.Rank, left));
        }
    }
}
