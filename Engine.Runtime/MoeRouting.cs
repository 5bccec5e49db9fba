namespace Engine.Runtime;

/// <summary>
/// The routing table <see cref="IBackend.MoeRoute"/> writes and the expert ops read, in floats (indices are exact
/// below 2^24). With S = tokens·k slots (slot s = t·k + j is token t's j-th choice) and E experts:
/// <code>
/// [0]                      S
/// [1]                      E
/// [2 + 2s], [3 + 2s]       expert and weight of slot s
/// [2 + 2S + e]             start of expert e's slots in the list below, for e = 0..E (E + 1 entries)
/// [3 + 2S + E + i]         the slots grouped by expert, ascending within an expert
/// </code>
/// The grouping lets a prefill multiply each expert's tokens as one matrix product without reading the table back.
/// </summary>
public static class MoeRouting
{
    public static int Length(int tokens, int k, int experts) => 3 + 3 * tokens * k + experts;

    public static int Expert(int slot) => 2 + 2 * slot;

    public static int Weight(int slot) => 3 + 2 * slot;

    public static int GroupStart(int slots, int expert) => 2 + 2 * slots + expert;

    public static int List(int slots, int experts) => 3 + 2 * slots + experts;

    /// <summary>Checks the arguments every backend's routing op shares.</summary>
    public static void Check(int tokens, int experts, int k, ITensor logits, ITensor routing)
    {
        if (tokens <= 0 || experts <= 0 || k <= 0 || k > experts)
            throw new ArgumentException($"routing {tokens} token(s) to {k} of {experts} experts is not possible");
        if ((long)tokens * k * 3 + experts + 3 > 1 << 24)
            throw new ArgumentException($"{tokens} tokens x {k} experts exceed the routing table's exact float indices");
        if (logits.Length < tokens * experts || routing.Length < Length(tokens, k, experts))
            throw new ArgumentException("the router logits or the routing table is too small for the batch");
    }
}
