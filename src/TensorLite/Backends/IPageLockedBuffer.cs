namespace TensorLite;

/// <summary>A page-locked host buffer of an <see cref="IPageLockedStaging"/> device, and the copies between it and the
/// device's contiguous tensors. Each copy returns once its bytes have arrived.</summary>
public interface IPageLockedBuffer : IDisposable
{
    /// <summary>The buffer's host memory.</summary>
    Span<byte> Span { get; }

    /// <summary>Copies <paramref name="count"/> bytes of the contiguous device tensor <paramref name="source"/>, from
    /// byte <paramref name="byteOffset"/> of its elements, into the start of this buffer.</summary>
    void CopyFromDevice(Tensor source, long byteOffset, int count);

    /// <summary>Copies the first <paramref name="count"/> bytes of this buffer into the contiguous device tensor
    /// <paramref name="destination"/>, from byte <paramref name="byteOffset"/> of its elements.</summary>
    void CopyToDevice(Tensor destination, long byteOffset, int count);
}
