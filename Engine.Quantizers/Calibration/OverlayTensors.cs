using Engine.Formats;

namespace Engine.Quantizers.Calibration;

/// <summary>A tensor source with some tensors replaced or added (the ones quantized so far); the rest read through. Does not own the base.</summary>
internal sealed class OverlayTensors(ITensorSource source, IReadOnlyDictionary<string, StoredBytes> replaced) : ITensorSource
{
    public IReadOnlyList<TensorInfo> Tensors =>
        [.. source.Tensors.Where(t => !replaced.ContainsKey(t.Name)), .. replaced.Values.Select(t => t.Info)];

    public string Path => source.Path;

    public bool TryGet(string name, out TensorInfo info)
    {
        if (replaced.TryGetValue(name, out var tensor))
        {
            info = tensor.Info;
            return true;
        }
        return source.TryGet(name, out info);
    }

    public byte[] ReadBytes(string name) => replaced.TryGetValue(name, out var tensor) ? tensor.Data : source.ReadBytes(name);

    public void Dispose()
    {
    }
}
