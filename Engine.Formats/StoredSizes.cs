namespace Engine.Formats;

/// <summary>One weight tensor's stored bytes (its own companions included) and the bits per weight they make.</summary>
public sealed record TensorSize(TensorInfo Info, long Bytes)
{
    public double BitsPerWeight => Bytes * 8.0 / Info.ElementCount;
}

/// <summary>
/// Bits per weight measured from the bytes a file stores. A tensor that others reference (<see cref="TensorInfo.References"/>:
/// a codebook, a low-rank factor) is a companion, not a weight: its bytes count toward the one weight tensor that
/// reaches it, or, when several share it, only toward the total.
/// </summary>
public sealed record StoredSizes(IReadOnlyList<TensorSize> Weights, IReadOnlyList<TensorSize> Companions, long Parameters, long TotalBytes)
{
    /// <summary>All stored bytes (companions included) over the weights' element count.</summary>
    public double BitsPerWeight => Parameters == 0 ? 0 : TotalBytes * 8.0 / Parameters;

    /// <param name="storedBytes">The bytes the file holds for a tensor, by name.</param>
    public static StoredSizes Of(IReadOnlyList<TensorInfo> tensors, Func<string, long> storedBytes)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(storedBytes);
        var byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var referenced = tensors.SelectMany(t => t.References).ToHashSet(StringComparer.Ordinal);
        var weights = tensors.Where(t => !referenced.Contains(t.Name)).ToList();

        // Which weight tensors reach each companion, following chains of references.
        var owners = new Dictionary<string, List<TensorInfo>>(StringComparer.Ordinal);
        foreach (var weight in weights)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var pending = new Stack<string>(weight.References);
            while (pending.TryPop(out string? name))
            {
                if (!seen.Add(name) || !byName.TryGetValue(name, out var companion)) continue;
                if (!owners.TryGetValue(name, out var list)) owners[name] = list = [];
                list.Add(weight);
                foreach (string next in companion.References) pending.Push(next);
            }
        }

        var bytes = weights.ToDictionary(w => w.Name, w => storedBytes(w.Name), StringComparer.Ordinal);
        var companions = new List<TensorSize>();
        long total = bytes.Values.Sum();
        foreach (var companion in tensors.Where(t => referenced.Contains(t.Name)))
        {
            long size = storedBytes(companion.Name);
            companions.Add(new TensorSize(companion, size));
            total += size;
            if (owners.TryGetValue(companion.Name, out var list) && list.Count == 1) bytes[list[0].Name] += size;
        }
        return new StoredSizes([.. weights.Select(w => new TensorSize(w, bytes[w.Name]))], companions, weights.Sum(w => w.ElementCount), total);
    }
}
