namespace Engine.Runtime.Models;

/// <summary>
/// Writes image features over the embeddings of a batch's image tokens, one backend copy per run of consecutive
/// image tokens within one image. The vision-language models differ only in where the k-th image token fed since
/// position 0 finds its feature row.
/// </summary>
internal static class ImageFeatureRuns
{
    /// <summary>
    /// Where image token <c>k</c> takes its features: the image's features [rows][D] (null: no image attached for it,
    /// the token keeps its embedding), its row, and the image's row count.
    /// </summary>
    public delegate (ITensor? Features, int Row, int Rows) Locate(int k);

    public static void Place(IBackend backend, ITensor x, ReadOnlySpan<int> batch, int imageTokenId, int dim, ref int fed, Locate locate)
    {
        for (int t = 0; t < batch.Length;)
        {
            if (batch[t] != imageTokenId)
            {
                t++;
                continue;
            }
            var (features, row, rows) = locate(fed);
            int run = 1;
            while (t + run < batch.Length && batch[t + run] == imageTokenId && row + run < rows) run++;
            if (features is not null) backend.Copy(features, row * dim, x, t * dim, run * dim);
            fed += run;
            t += run;
        }
    }
}
