namespace Engine.Formats;

/// <summary>
/// A set of named tensors from a model file. Tensor names follow the Hugging Face convention
/// (<c>model.layers.0.self_attn.q_proj.weight</c>) whatever the file's own naming.
/// </summary>
public interface ITensorSource : IDisposable
{
    IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>The file or folder the tensors come from, for messages; file-backed sources return their path.</summary>
    string Path => GetType().Name;

    bool TryGet(string name, out TensorInfo info);

    /// <summary>The raw stored bytes of a tensor, in its <see cref="TensorInfo.Type"/>.</summary>
    byte[] ReadBytes(string name);
}

/// <summary>
/// A tensor source with no file behind it (benchmark weights): a tensor exists once a loader declares the shape it
/// expects, so any architecture can be loaded at any size without listing its tensors.
/// </summary>
public interface ISyntheticTensorSource : ITensorSource
{
    void Declare(string name, long[] shape);
}
