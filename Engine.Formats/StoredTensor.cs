namespace Engine.Formats;

/// <summary>A tensor and where its bytes lie in a file: <paramref name="Offset"/> is absolute from the file start.</summary>
internal sealed record StoredTensor(TensorInfo Info, long Offset, long Length);
