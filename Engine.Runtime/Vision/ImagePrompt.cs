namespace Engine.Runtime.Vision;

/// <summary>
/// Prompts with images in them: the text marks each image with <see cref="Marker"/>, and encoding turns every
/// marker into its image's image tokens (framed by <see cref="IMultimodalModel.ImageFrame"/>), so the tokenizer itself
/// need not know the marker.
/// </summary>
public static class ImagePrompt
{
    public const string Marker = "<image>";

    /// <summary>Markers in <paramref name="text"/>.</summary>
    public static int CountMarkers(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int count = 0;
        for (int at = text.IndexOf(Marker, StringComparison.Ordinal); at >= 0; at = text.IndexOf(Marker, at + Marker.Length, StringComparison.Ordinal))
            count++;
        return count;
    }

    /// <summary>
    /// Token ids of <paramref name="text"/>: the pieces between markers through <paramref name="encode"/> (told
    /// whether the piece opens the prompt, so only the first gets a BOS), each marker as a run of image tokens:
    /// <paramref name="imageTokens"/>[i] for the i-th marker when given (images whose count depends on their size),
    /// else the model's fixed <see cref="IMultimodalModel.TokensPerImage"/>.
    /// </summary>
    public static int[] Encode(string text, IMultimodalModel model, Func<string, bool, int[]> encode, IReadOnlyList<int>? imageTokens = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(encode);
        var ids = new List<int>();
        string[] pieces = text.Split(Marker);
        for (int i = 0; i < pieces.Length; i++)
        {
            if (i > 0)
            {
                int count = imageTokens is null ? model.TokensPerImage : i <= imageTokens.Count ? imageTokens[i - 1] : 0;
                if (count <= 0) throw new ArgumentException($"image {i} of the prompt has no attached image to give its token count");
                var (before, after) = model.ImageFrame;
                ids.AddRange(before);
                ids.AddRange(Enumerable.Repeat(model.ImageTokenId, count));
                ids.AddRange(after);
            }
            if (pieces[i].Length > 0 || i == 0) ids.AddRange(encode(pieces[i], i == 0));
        }
        return [.. ids];
    }
}
