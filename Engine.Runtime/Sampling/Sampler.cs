using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Engine.Runtime.Sampling;

/// <summary>
/// Picks tokens from logits: repetition penalty, then greedy when the temperature is 0, else top-k, temperature,
/// top-p and min-p filtering and a draw from the seeded generator (llama.cpp's order).
/// </summary>
/// <remarks>
/// <para>
/// The result is defined by the plain algorithm: sort the candidates (ids neither suppressed nor -inf) by logit,
/// best first, equal logits by id ascending (NaN last, -0 equal to +0); keep the first top-k; p_i = exp((l_i - max) / T)
/// in double; total = p_0 + p_1 + ... summed in that order; keep the shortest prefix whose running sum of p_i / total
/// reaches top-p; then the leading run with p_i &gt;= min-p * p_0; draw r * (sum of the kept p_i) once and walk the kept
/// prefix subtracting p_i until below 0.
/// </para>
/// <para>
/// It gives exactly that token without sorting the vocabulary. With top-k, a bounded heap (or nth-element selection
/// for a large k) picks the k best, and only they are sorted. Without it, only the prefix of the order that top-p,
/// min-p and the draw look at is materialized, in bands of decreasing logit, each band sorted on its own. The total
/// that top-p divides by is the ordered sum over every candidate: it is not formed in that order; it is bracketed
/// instead by a sum in index order and the rounding-error bound of recursive summation (both sums are within
/// (n - 1) u of the exact one), and each decision (the running sum reaching top-p, the draw turning negative) is taken
/// under both ends of the bracket. As the running sums are monotonic in the total, the decision is exact when both
/// ends agree; when they do not (a running sum within about n * 1e-16 of the threshold) the whole order is
/// materialized and the decision is taken with the exact total.
/// </para>
/// <para>Buffers grow to the vocabulary once and are reused; a call allocates nothing proportional to it.</para>
/// </remarks>
public sealed class Sampler
{
    private const int HeapTopKLimit = 4096;      // top-k above this: nth-element selection instead of a heap
    private const int SmallCandidateCount = 256; // this few candidates: sort them all
    private const double FirstBandWidth = 4;     // first band: logits within 4 temperatures of the best
    private const double WholeBandWidth = 1500;  // exp(-1500) is 0: a band this wide is the rest of the order
    private const int RadixSortMinimum = 4096;   // fewer keys: a comparison sort
    private const int Restart = -1, Ambiguous = -2;

    private readonly SamplingOptions _options;
    private readonly Random _random;
    private readonly HashSet<int> _penalized = [];
    private readonly List<int> _marked = [];
    private bool[] _suppressed = [];

    // The materialized prefix of the candidate order: key (rank << 32 | id, ascending = best first) and probability.
    private ulong[] _keys = [];
    private double[] _p = [];
    private ulong[] _scratch = [];

    // State of one call.
    private int _n;              // candidates after top-k
    private int _prefix;         // how many of them are in _keys and _p
    private double _max;         // logit of the best candidate
    private double _bandFloor;   // the prefix is every candidate with a logit >= this
    private double _bandWidth;   // (max - floor) / T
    private bool _exact;         // the total is known exactly: _lo == _hi == total
    private double _lo, _hi;     // bounds of the ordered total
    private double _draw;
    private bool _drawn;

    public Sampler(SamplingOptions options)
    {
        options.Validate();
        _options = options;
        _random = new Random(options.Seed);
    }

    /// <summary>Widens the bracket of the total by this factor (tests use it to exercise the exact fallback).</summary>
    internal double BoundSlack { get; set; } = 1;

    /// <summary>Calls whose bracket could not decide and that materialized the whole order.</summary>
    internal int ExactFallbacks { get; private set; }

    /// <param name="logits">Logits of the vocabulary; modified in place by the penalty.</param>
    /// <param name="recent">Tokens seen so far (prompt and output), for the repetition penalty.</param>
    /// <param name="suppressed">Ids that must not be chosen.</param>
    public int Next(Span<float> logits, ReadOnlySpan<int> recent, IReadOnlyCollection<int>? suppressed = null)
    {
        if (_options.RepeatPenalty != 1f && _options.RepeatLastN > 0)
        {
            var window = recent.Length > _options.RepeatLastN ? recent[^_options.RepeatLastN..] : recent;
            _penalized.Clear();
            foreach (int token in window)
            {
                if ((uint)token >= (uint)logits.Length || !_penalized.Add(token)) continue;
                logits[token] = logits[token] > 0 ? logits[token] / _options.RepeatPenalty : logits[token] * _options.RepeatPenalty;
            }
        }
        suppressed ??= [];
        if (_options.Temperature == 0) return GreedyDecoder.ArgMax(logits, suppressed);

        Mark(suppressed, logits.Length);
        try
        {
            return Sample(logits);
        }
        finally
        {
            foreach (int id in _marked) _suppressed[id] = false;
            _marked.Clear();
        }
    }

    private void Mark(IReadOnlyCollection<int> suppressed, int vocab)
    {
        if (_suppressed.Length < vocab)
        {
            _suppressed = new bool[vocab];
            _keys = new ulong[vocab];
            _p = new double[vocab];
            _scratch = new ulong[vocab];
        }
        foreach (int id in suppressed)
        {
            if ((uint)id >= (uint)vocab || _suppressed[id]) continue;
            _suppressed[id] = true;
            _marked.Add(id);
        }
        _marked.Sort();   // the unsuppressed runs lie between them
    }

    private int Sample(ReadOnlySpan<float> logits)
    {
        _drawn = false;
        int k = _options.TopK;
        if (k > 0 && k <= HeapTopKLimit)
        {
            FinishExact(logits, HeapTopK(logits, k));
        }
        else
        {
            int count = 0, start = 0;
            float best = float.NegativeInfinity;
            bool unordered = false;
            foreach (int id in _marked)
            {
                Scan(logits[start..id], ref count, ref best, ref unordered);
                start = id + 1;
            }
            Scan(logits[start..], ref count, ref best, ref unordered);
            if (count == 0) throw new InvalidOperationException("every token is suppressed: nothing to sample");
            if (k > 0 && count > k)
            {
                FillAll(logits);
                SelectSmallest(_keys.AsSpan(0, count), k);
                _keys.AsSpan(0, k).Sort();
                FinishExact(logits, k);
            }
            else if (unordered || float.IsPositiveInfinity(best) || count <= SmallCandidateCount)
            {
                // NaN or +inf make every probability NaN: the plain algorithm, whatever it gives.
                FillAll(logits);
                SortInIdOrder(_keys.AsSpan(0, count));
                FinishExact(logits, count);
            }
            else
            {
                StartBands(logits, count, best);
            }
        }

        while (true)
        {
            int index = Choose(logits);
            if (index >= 0) return (int)(uint)_keys[index];
            if (index == Ambiguous)
            {
                ExactFallbacks++;
                Grow(logits, whole: true);
            }
        }
    }

    /// <summary>Sort key: ascending is logit descending (NaN last, -0 as +0), then id ascending.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Key(float value, int id)
    {
        uint rank;
        if (float.IsNaN(value)) rank = uint.MaxValue;
        else
        {
            uint bits = BitConverter.SingleToUInt32Bits(value == 0 ? 0f : value);
            rank = (bits & 0x8000_0000u) != 0 ? bits : ~bits & 0x7FFF_FFFFu;
        }
        return ((ulong)rank << 32) | (uint)id;
    }

    /// <summary>The min(k, candidates) best candidates, sorted, in _keys; returns how many.</summary>
    private int HeapTopK(ReadOnlySpan<float> logits, int k)
    {
        var heap = _keys;   // a max-heap of keys: the root is the worst kept
        var suppressed = _suppressed;
        int size = 0;
        bool full = false;
        float worst = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float v = logits[i];
            // Ids come in ascending order, so an equal logit loses to the root (false when the root is NaN).
            if (full && v <= worst) continue;
            if (float.IsNegativeInfinity(v) || suppressed[i]) continue;
            ulong key = Key(v, i);
            if (!full)
            {
                int child = size++;
                heap[child] = key;
                while (child > 0)
                {
                    int parent = (child - 1) >> 1;
                    if (heap[parent] >= heap[child]) break;
                    (heap[parent], heap[child]) = (heap[child], heap[parent]);
                    child = parent;
                }
                if (size == k)
                {
                    full = true;
                    worst = logits[(int)(uint)heap[0]];
                }
            }
            else if (key < heap[0])
            {
                int node = 0;
                while (true)
                {
                    int child = 2 * node + 1;
                    if (child >= k) break;
                    if (child + 1 < k && heap[child + 1] > heap[child]) child++;
                    if (heap[child] <= key) break;
                    heap[node] = heap[child];
                    node = child;
                }
                heap[node] = key;
                worst = logits[(int)(uint)heap[0]];
            }
        }
        if (size == 0) throw new InvalidOperationException("every token is suppressed: nothing to sample");
        heap.AsSpan(0, size).Sort();
        return size;
    }

    private void FillAll(ReadOnlySpan<float> logits)
    {
        var suppressed = _suppressed;
        int count = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float v = logits[i];
            if (float.IsNegativeInfinity(v) || suppressed[i]) continue;
            _keys[count++] = Key(v, i);
        }
    }

    /// <summary>
    /// Sorts keys that were written in ascending id order: for many, a stable radix sort on the rank alone (three
    /// 11-bit digits, a digit all keys share skipped), which keeps equal ranks in id order.
    /// </summary>
    private void SortInIdOrder(Span<ulong> keys)
    {
        if (keys.Length < RadixSortMinimum)
        {
            keys.Sort();
            return;
        }
        Span<int> counts = stackalloc int[3 * 2048];
        counts.Clear();
        foreach (ulong key in keys)
        {
            counts[(int)(key >> 32) & 2047]++;
            counts[2048 + ((int)(key >> 43) & 2047)]++;
            counts[4096 + (int)(key >> 54)]++;
        }
        Span<ulong> source = keys, target = _scratch.AsSpan(0, keys.Length);
        for (int pass = 0; pass < 3; pass++)
        {
            var count = counts.Slice(2048 * pass, 2048);
            int shift = 32 + 11 * pass;
            if (count[(int)(source[0] >> shift) & 2047] == keys.Length) continue;
            for (int digit = 0, sum = 0; digit < 2048; digit++) (count[digit], sum) = (sum, sum + count[digit]);
            foreach (ulong key in source) target[count[(int)(key >> shift) & 2047]++] = key;
            var written = target;
            target = source;
            source = written;
        }
        if (source != keys) source.CopyTo(keys);
    }

    /// <summary>Moves the <paramref name="k"/> smallest keys to the front, in any order (keys are distinct).</summary>
    private static void SelectSmallest(Span<ulong> keys, int k)
    {
        int lo = 0, hi = keys.Length - 1, target = k - 1, budget = 2 * (64 - (int)ulong.LeadingZeroCount((ulong)keys.Length));
        while (hi > lo)
        {
            if (hi - lo < 32 || budget-- == 0)
            {
                keys[lo..(hi + 1)].Sort();
                return;
            }
            int mid = lo + ((hi - lo) >> 1);
            ulong a = keys[lo], b = keys[mid], c = keys[hi];
            ulong pivot = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
            int i = lo, j = hi;
            while (i <= j)
            {
                while (keys[i] < pivot) i++;
                while (keys[j] > pivot) j--;
                if (i <= j)
                {
                    (keys[i], keys[j]) = (keys[j], keys[i]);
                    i++;
                    j--;
                }
            }
            if (target <= j) hi = j;
            else if (target >= i) lo = i;
            else return;
        }
    }

    /// <summary>The whole (top-k) order is in _keys: probabilities and the total, summed in order.</summary>
    private void FinishExact(ReadOnlySpan<float> logits, int n)
    {
        double temperature = _options.Temperature;
        _n = n;
        _prefix = n;
        _max = logits[(int)(uint)_keys[0]];
        double total = 0;
        for (int i = 0; i < n; i++)
        {
            double p = Math.Exp((logits[(int)(uint)_keys[i]] - _max) / temperature);
            _p[i] = p;
            total += p;
        }
        _lo = _hi = total;
        _exact = true;
    }

    /// <summary>No top-k cut and finite logits: nothing materialized yet, the total bracketed if a decision needs it.</summary>
    private void StartBands(ReadOnlySpan<float> logits, int count, float best)
    {
        _n = count;
        _prefix = 0;
        _max = best;
        _bandFloor = double.PositiveInfinity;
        _bandWidth = 0;
        _exact = false;
        _lo = _hi = double.NaN;
        if (_options.TopP < 1 || _options.MinP == 0)
        {
            // Only top-p (and a draw over every candidate) need the total.
            double sum = 0;
            int start = 0;
            foreach (int id in _marked)
            {
                sum += SumExp(logits[start..id], _max, _options.Temperature);
                start = id + 1;
            }
            sum += SumExp(logits[start..], _max, _options.Temperature);
            // Summing n non-negative terms in any order (any tree of additions) is within (n - 1) u / (1 - (n - 1) u) of
            // their exact sum, so the ordered total is within twice that of this one (4 (n + 1) u covers it and the
            // rounding here), widened by the error of SumExp's terms against Math.Exp's and the terms it drops.
            double bound = (sum * ((count + 1.0) * Math.ScaleB(1.0, -51) + 2 * ExpRelativeError) + count * ExpDroppedTerm) * BoundSlack;
            _lo = Math.Max(sum - bound, 1);   // the ordered total starts at p_0 = 1 and only grows
            _hi = sum + bound;
        }
    }

    /// <summary>Counts candidates (not -inf) in a run of unsuppressed logits, their maximum, and whether any is NaN.</summary>
    private static void Scan(ReadOnlySpan<float> logits, ref int count, ref float best, ref bool unordered)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated && logits.Length >= Vector256<float>.Count)
        {
            var negativeInfinity = Vector256.Create(float.NegativeInfinity);
            var max = negativeInfinity;
            var nan = Vector256<float>.Zero;
            for (; i <= logits.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.Create(logits.Slice(i, Vector256<float>.Count));
                count += BitOperations.PopCount(Vector256.ExtractMostSignificantBits(Vector256.Equals(v, negativeInfinity)) ^ 0xFFu);
                nan |= ~Vector256.Equals(v, v);
                max = Vector256.Max(max, v);
            }
            if (nan != Vector256<float>.Zero) unordered = true;
            for (int lane = 0; lane < Vector256<float>.Count; lane++)
                if (max[lane] > best) best = max[lane];
        }
        for (; i < logits.Length; i++)
        {
            float v = logits[i];
            if (float.IsNegativeInfinity(v)) continue;
            count++;
            if (v > best) best = v;
            else if (float.IsNaN(v)) unordered = true;
        }
    }

    /// <summary>Relative error of <see cref="Exp"/> against the exact exponential, with a wide margin (it is below 1e-15).</summary>
    internal const double ExpRelativeError = 1e-13;

    /// <summary>Above every exp(x) that <see cref="Exp"/> drops to 0 (x below -700).</summary>
    private const double ExpDroppedTerm = 1e-300;

    /// <summary>
    /// The sum of exp((v - max) / T) over a run of logits (no NaN, none above max), -inf giving 0: each term within
    /// <see cref="ExpRelativeError"/> of Math.Exp's, or 0 when below exp(-700); summed in some order.
    /// </summary>
    private static double SumExp(ReadOnlySpan<float> logits, double max, double temperature)
    {
        double sum = 0;
        int i = 0;
        if (Vector256.IsHardwareAccelerated && logits.Length >= Vector256<float>.Count)
        {
            var vmax = Vector256.Create(max);
            var vt = Vector256.Create(temperature);
            var acc = Vector256<double>.Zero;
            for (; i <= logits.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var (lower, upper) = Vector256.Widen(Vector256.Create(logits.Slice(i, Vector256<float>.Count)));
                acc += Exp((lower - vmax) / vt);
                acc += Exp((upper - vmax) / vt);
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < logits.Length; i++)
        {
            float v = logits[i];
            if (!float.IsNegativeInfinity(v)) sum += Math.Exp((v - max) / temperature);
        }
        return sum;
    }

    /// <summary>
    /// exp(x) for x &lt;= 0 (0 below -700, where exp is under 1e-304): x = k ln 2 + r with |r| &lt;= ln 2 / 2 (Cody and
    /// Waite's two-part ln 2), exp(r) by its Taylor polynomial of degree 13 (truncation under 1e-17), times 2^k.
    /// </summary>
    internal static Vector256<double> Exp(Vector256<double> x)
    {
        var magic = Vector256.Create(6755399441055744.0);   // 1.5 * 2^52: adding it rounds to an integer
        var t = x * Vector256.Create(1.4426950408889634) + magic;
        var k = t - magic;
        var r = x - k * Vector256.Create(6.93147180369123816490e-01);   // ln 2's upper 32 bits: k * it is exact
        r -= k * Vector256.Create(1.90821492927058770002e-10);
        var p = Vector256.Create(1.0 / 6227020800);
        p = p * r + Vector256.Create(1.0 / 479001600);
        p = p * r + Vector256.Create(1.0 / 39916800);
        p = p * r + Vector256.Create(1.0 / 3628800);
        p = p * r + Vector256.Create(1.0 / 362880);
        p = p * r + Vector256.Create(1.0 / 40320);
        p = p * r + Vector256.Create(1.0 / 5040);
        p = p * r + Vector256.Create(1.0 / 720);
        p = p * r + Vector256.Create(1.0 / 120);
        p = p * r + Vector256.Create(1.0 / 24);
        p = p * r + Vector256.Create(1.0 / 6);
        p = p * r + Vector256.Create(0.5);
        p = p * r + Vector256<double>.One;
        p = p * r + Vector256<double>.One;
        // The low bits of t hold k: 2^k's exponent field is k + 1023.
        var scale = Vector256.ShiftLeft(t.AsUInt64() - magic.AsUInt64() + Vector256.Create(1023UL), 52).AsDouble();
        return Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(x, Vector256.Create(-700.0)), p * scale, Vector256<double>.Zero);
    }

    /// <summary>
    /// Appends the next band of the order: candidates with logits below the current floor and within twice the width
    /// (or all the rest). Once every candidate is in, the total is summed in order and is exact.
    /// </summary>
    private void Grow(ReadOnlySpan<float> logits, bool whole)
    {
        double temperature = _options.Temperature;
        double width = _bandWidth == 0 ? Math.Max(FirstBandWidth, _options.MinP > 0 ? 1 - Math.Log(_options.MinP) : 0) : 2 * _bandWidth;
        double floor = whole || width >= WholeBandWidth ? double.NegativeInfinity : _max - width * temperature;
        double ceiling = _bandFloor;
        var suppressed = _suppressed;
        int start = _prefix, end = start;
        for (int i = 0; i < logits.Length; i++)
        {
            float v = logits[i];
            if (v >= floor && v < ceiling && !float.IsNegativeInfinity(v) && !suppressed[i]) _keys[end++] = Key(v, i);
        }
        SortInIdOrder(_keys.AsSpan(start, end - start));
        for (int i = start; i < end; i++) _p[i] = Math.Exp((logits[(int)(uint)_keys[i]] - _max) / temperature);
        _prefix = end;
        _bandFloor = floor;
        _bandWidth = width;
        if (_prefix == _n && !_exact)
        {
            double total = 0;
            for (int i = 0; i < _n; i++) total += _p[i];
            _lo = _hi = total;
            _exact = true;
        }
    }

    /// <summary>Materializes the order up to <paramref name="count"/>; false when that made the total exact (start over).</summary>
    private bool Ensure(ReadOnlySpan<float> logits, int count)
    {
        bool wasExact = _exact;
        while (_prefix < count) Grow(logits, whole: false);
        return _exact == wasExact;
    }

    /// <summary>The chosen position in the order, or <see cref="Restart"/> / <see cref="Ambiguous"/>.</summary>
    private int Choose(ReadOnlySpan<float> logits)
    {
        int n = _n;
        if (!Ensure(logits, 1)) return Restart;
        bool topP = _options.TopP < 1, minP = _options.MinP > 0;
        int keep = n;
        if (topP || minP)
        {
            double threshold = _options.MinP * _p[0];
            double low = 0, high = 0;   // the running sum of p_i / total with the total's upper and lower bound
            for (int i = 0; i < n; i++)
            {
                if (i >= _prefix && !Ensure(logits, i + 1)) return Restart;
                double p = _p[i];
                // Min-p first: p_i below the threshold ends the kept run before i whether or not top-p stops at i.
                if (minP && i >= 1 && !(p >= threshold))
                {
                    keep = i;
                    break;
                }
                if (topP)
                {
                    low += p / _hi;
                    high += p / _lo;
                    if (high >= _options.TopP)
                    {
                        if (!(low >= _options.TopP)) return Ambiguous;
                        keep = i + 1;
                        break;
                    }
                }
            }
        }

        double keptLow, keptHigh;
        if (keep <= _prefix)
        {
            double kept = 0;
            for (int i = 0; i < keep; i++) kept += _p[i];
            keptLow = keptHigh = kept;
        }
        else
        {
            // Everything kept: the kept sum is the total.
            keptLow = _lo;
            keptHigh = _hi;
        }
        if (!_drawn)
        {
            _draw = _random.NextDouble();
            _drawn = true;
        }
        double drawLow = _draw * keptLow, drawHigh = _draw * keptHigh;
        for (int i = 0; i < keep; i++)
        {
            if (i >= _prefix && !Ensure(logits, i + 1)) return Restart;
            double p = _p[i];
            drawLow -= p;
            drawHigh -= p;
            if (drawLow < 0) return drawHigh < 0 ? i : Ambiguous;
        }
        return keep - 1;
    }
}
