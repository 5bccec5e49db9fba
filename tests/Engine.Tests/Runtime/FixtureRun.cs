using Engine.Runtime;

namespace Engine.Tests.Runtime;

/// <summary>Runs a model on a reference file's prompt: the logits of every position, [positions][vocab].</summary>
internal static class FixtureRun
{
    public static float[] Logits(string modelPath, BackendKind backend, ReferenceFile reference)
    {
        using var model = ModelLoader.Load(modelPath, new ModelOptions { Backend = backend, MaxContext = 128 });
        var logits = new float[reference.InputIds.Length * model.Config.VocabSize];
        model.Forward(model.CreateState(), reference.InputIds, logits, allPositions: true);
        return logits;
    }
}
