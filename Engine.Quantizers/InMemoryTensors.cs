using Engine.Formats;

namespace Engine.Quantizers;

/// <summary>Tensors held in memory, as a tensor source (the companions of an encoded tensor, for instance).</summary>
public sealed class InMemoryTensors(IEnumerable<StoredBytes> tensors) : ITensorSource
{
    private readonly Dictionary<string, StoredBytes> _tensors = tensors.ToDictionary(t => t.Info.Name);

    public IReadOnlyList<TensorInfo> Tensors => _tensors.Values.Select(t => t.Info).ToList();

    public string Path => "memory";

    public bool TryGet(string name, out TensorInfo info)
    {
        bool found = _tensors.TryGetValue(name, out var tensor);
        info = tensor?.Info!;
        return found;
    }

    public byte[] ReadBytes(string name) =>
        _tensors.TryGetValue(name, out var tensor) ? tensor.Data : throw new InvalidDataException($"tensor '{name}' not found in memory");

    public void Dispose()
    {
    }
}
