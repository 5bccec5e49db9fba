using Engine.Formats;

namespace Engine.Quantizers;

/// <summary>
/// Random weights at whatever shapes a model's loader declares, for speed benchmarks at real model sizes: matrices
/// are encoded in <paramref name="matrixFormat"/> (the format's default parameters and method), vectors and other
/// tensors are f32. Values are uniform with unit-variance outputs for matrices and near 1 for vectors, so activations
/// stay finite; they carry no meaning. Each tensor is made when read, so host memory holds one tensor at a time.
/// </summary>
public sealed class SyntheticTensors(WeightType matrixFormat, int seed = 42) : ISyntheticTensorSource
{
    private readonly Dictionary<string, TensorInfo> _declared = [];
    private readonly Dictionary<string, StoredBytes> _companions = [];

    public IReadOnlyList<TensorInfo> Tensors => _declared.Values.ToList();

    public string Path => $"synthetic {WeightTypes.Get(matrixFormat).Name} weights";

    public void Declare(string name, long[] shape)
    {
        if (_declared.TryGetValue(name, out var known))
        {
            if (!known.Shape.SequenceEqual(shape))
                throw new InvalidDataException($"synthetic tensor '{name}' declared as {known.ShapeText} and again with another shape");
            return;
        }
        var type = shape.Length == 2 ? matrixFormat : WeightType.F32;
        var format = WeightTypes.Get(type);
        _declared[name] = new TensorInfo(name, shape, type, format.DefaultParameters);
    }

    public bool TryGet(string name, out TensorInfo info)
    {
        if (_declared.TryGetValue(name, out info!)) return true;
        if (_companions.TryGetValue(name, out var companion))
        {
            info = companion.Info;
            return true;
        }
        return false;
    }

    public byte[] ReadBytes(string name)
    {
        if (_companions.TryGetValue(name, out var companion)) return companion.Data;
        var info = _declared.TryGetValue(name, out var declared) ? declared
            : throw new InvalidDataException($"tensor '{name}' was not declared to the synthetic source");
        var random = new Random(HashCode.Combine(seed, name.GetHashCode(StringComparison.Ordinal)));
        if (info.Shape.Length != 2)
        {
            var vector = new float[info.ElementCount];
            for (int i = 0; i < vector.Length; i++) vector[i] = 0.9f + 0.2f * random.NextSingle();
            return WeightEncoders.Encode(WeightType.F32, name, vector, 1, vector.Length).Data;
        }
        int rows = checked((int)info.Shape[0]), columns = checked((int)info.Shape[1]);
        var values = new float[(long)rows * columns];
        float bound = MathF.Sqrt(3f / columns);
        for (long i = 0; i < values.Length; i++) values[i] = bound * (2 * random.NextSingle() - 1);
        var encoded = WeightEncoders.Encode(info.Type, name, values, rows, columns);
        foreach (var shared in encoded.Companions) _companions.TryAdd(shared.Info.Name, shared);
        return encoded.Data;
    }

    public void Dispose()
    {
    }
}
