namespace Engine.Runtime.Vision;

/// <summary>
/// Prompts with images in them: the text marks each image with <see cref="Marker"/>, and encoding turns every
/// marker into the model's <see cref="IMultimodalModel.TokensPerImage"/> image tokens, so the tokenizer itself need
/// not know the marker.
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
    /// whether the piece opens the prompt, so only the first gets a BOS), each marker as a run of image tokens.
    /// </summary>
    public static int[] Encode(string text, IMultimodalModel model, Func<string, bool, int[]> encode)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(encode);
        var ids = new List<int>();
        string[] pieces = text.Split(Marker);
        for (int i = 0; i < pieces.Length; i++)
        {
            if (i > 0) ids.AddRange(Enumerable.Repeat(model.ImageTokenId, model.TokensPerImage));
            if (pieces[i].Length > 0 || i == 0) ids.AddRange(encode(pieces[i], i == 0));
        }
        return [.. ids];
    }
}
