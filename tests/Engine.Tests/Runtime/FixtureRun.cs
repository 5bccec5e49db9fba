using Engine.Runtime;

namespace Engine.Tests.Runtime;

/// <summary>Runs a model on a reference file's prompt (and image, for a vision model).</summary>
internal static class FixtureRun
{
    /// <summary>The logits of every position, [positions][vocab].</summary>
    public static float[] Logits(string modelPath, BackendKind backend, ReferenceFile reference)
    {
        using var model = ModelLoader.Load(modelPath, new ModelOptions { Backend = backend, MaxContext = 128 });
        var logits = new float[reference.InputIds.Length * model.Config.VocabSize];
        model.Forward(CreateState(model, reference), reference.InputIds, logits, allPositions: true);
        return logits;
    }

    /// <summary>A fresh state with the reference's image attached when it has one.</summary>
    public static IModelState CreateState(ILanguageModel model, ReferenceFile reference)
    {
        var state = model.CreateState();
        if (reference.PixelValues is { } pixels)
        {
            var vision = model as IMultimodalModel
                ?? throw new InvalidOperationException($"the reference has pixel values but {model.Config.Architecture} reads no images");
            vision.AddImages(state, pixels, reference.PixelValuesShape!);
        }
        return state;
    }
}
