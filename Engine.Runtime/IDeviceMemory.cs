using Engine.Formats;

namespace Engine.Runtime;

/// <summary>Where tensors live: uploads of weights (kept in their stored format) and vectors, activations, host writes and reads.</summary>
public interface IDeviceMemory
{
    /// <summary>"vulkan" or "cpu".</summary>
    string Name { get; }

    /// <summary>The device that runs the ops, in words.</summary>
    string DeviceName { get; }

    /// <summary>
    /// Bits read from weights whose format has a run-time precision (SEFP mantissa bits, 2..7; a tensor stored with
    /// fewer reads all it has); 0 reads everything stored. Changing it takes effect at the next op, without a reload.
    /// </summary>
    int RuntimePrecision { get; set; }

    /// <summary>
    /// Uploads a matrix in its stored format (<paramref name="data"/> laid out as <see cref="TensorInfo.Layout"/> says);
    /// <paramref name="shared"/> supplies the tensors the format references (a codebook).
    /// </summary>
    IWeightMatrix UploadMatrix(TensorInfo info, ReadOnlySpan<byte> data, ITensorSource? shared = null);

    ITensor UploadVector(ReadOnlySpan<float> values);

    /// <summary>A zeroed tensor of <paramref name="length"/> elements, float32 unless asked for <see cref="ElementType.F16"/>.</summary>
    ITensor Allocate(int length, ElementType element = ElementType.F32);

    /// <summary>
    /// Writes host floats into a tensor at an offset (rounded to halves in an f16 tensor), after every op recorded so
    /// far (a synchronisation point on a GPU).
    /// </summary>
    void Write(ITensor destination, int offset, ReadOnlySpan<float> values);

    /// <summary>Completes every recorded op and copies the first destination.Length elements of the tensor out, as floats.</summary>
    void Read(ITensor tensor, Span<float> destination);
}
