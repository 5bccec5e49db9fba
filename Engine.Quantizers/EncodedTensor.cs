using Engine.Formats;

namespace Engine.Quantizers;

/// <summary>One tensor in its stored form.</summary>
public sealed record StoredBytes(TensorInfo Info, byte[] Data);

/// <summary>
/// An encoded tensor and the tensors it references (<see cref="TensorInfo.References"/>): a codebook shared by
/// every tensor of the format (written once), or factors of its own.
/// </summary>
public sealed record EncodedTensor(StoredBytes Tensor, IReadOnlyList<StoredBytes> Companions)
{
    public EncodedTensor(TensorInfo info, byte[] data) : this(new StoredBytes(info, data), []) { }

    public TensorInfo Info => Tensor.Info;

    public byte[] Data => Tensor.Data;
}
