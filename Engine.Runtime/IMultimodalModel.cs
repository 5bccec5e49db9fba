namespace Engine.Runtime;

/// <summary>
/// A language model that also reads images. A prompt holds <see cref="ImageTokens"/> copies of
/// <see cref="ImageTokenId"/> for each image; images attached to a state with <see cref="AddImages"/> fill those tokens
/// in order: the image tokens fed since position 0 take the first image's features row by row, then the next
/// image's. Everything else is the plain <see cref="ILanguageModel"/> session: a prompt without
/// image tokens runs as text, and <see cref="IModelState.Reset"/> keeps the images so a replayed prompt sees them again.
/// </summary>
public interface IMultimodalModel : ILanguageModel
{
    /// <summary>The token id that stands for one image feature in a prompt.</summary>
    int ImageTokenId { get; }

    /// <summary>Image tokens (features) per image; 0 when the count depends on the image's size (Qwen2-VL).</summary>
    int TokensPerImage { get; }

    /// <summary>
    /// [channels, height, width] of one image as <see cref="AddImages"/> takes it; height and width 0 when the model
    /// takes images of many sizes.
    /// </summary>
    IReadOnlyList<int> ImageShape { get; }

    /// <summary>Image tokens an image of <paramref name="imageShape"/> [channels, height, width] fills.</summary>
    int ImageTokens(ReadOnlySpan<int> imageShape) => TokensPerImage;

    /// <summary>Tokens a prompt puts right before and after each image's image tokens (Qwen2-VL's vision_start and vision_end).</summary>
    (int[] Before, int[] After) ImageFrame => ([], []);

    /// <summary>
    /// Encodes normalised images, <paramref name="pixelValues"/> row-major with <paramref name="shape"/>
    /// [images, channels, height, width] (or [channels, height, width] for one), and attaches them to the state after
    /// those it has. The features stay on the backend.
    /// </summary>
    void AddImages(IModelState state, ReadOnlySpan<float> pixelValues, ReadOnlySpan<int> shape);

    /// <summary>Forgets the state's images and every consumed token.</summary>
    void ClearImages(IModelState state);
}
