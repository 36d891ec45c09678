using ILGPU;
using ILGPU.Runtime;

namespace TensorLite.Ilgpu;

/// <summary>Page-locked host buffers (<see cref="IPageLockedStaging"/>): ILGPU's page-locked arrays (on CUDA, host
/// memory the device reaches by DMA; on the CPU accelerator, a pinned array) and copies on the default stream, so they
/// follow every kernel queued before them.</summary>
public sealed partial class IlgpuBackend : IPageLockedStaging
{
    /// <inheritdoc/>
    public IPageLockedBuffer AllocatePageLocked(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        return new PageLockedBuffer(this, _accelerator.AllocatePageLocked1D<byte>(bytes));
    }

    private sealed class PageLockedBuffer(IlgpuBackend backend, PageLockedArray1D<byte> array) : IPageLockedBuffer
    {
        public Span<byte> Span => array.Span;

        public void CopyFromDevice(Tensor source, long byteOffset, int count)
        {
            var stream = backend._accelerator.DefaultStream;
            backend.Bytes(Contiguous(source)).SubView(byteOffset, count).CopyTo(stream, Host(count));
            stream.Synchronize();
        }

        public void CopyToDevice(Tensor destination, long byteOffset, int count)
        {
            var stream = backend._accelerator.DefaultStream;
            Host(count).CopyTo(stream, backend.Bytes(Contiguous(destination)).SubView(byteOffset, count));
            stream.Synchronize();
        }

        private ArrayView<byte> Host(int count) => array.ArrayView.SubView(0, count);

        private Tensor Contiguous(Tensor t) => t.Backend == backend && t.IsContiguous
            ? t
            : throw new ArgumentException($"A page-locked copy needs a contiguous tensor of this device, not {t.Describe()}.", nameof(t));

        public void Dispose() => array.Dispose();
    }
}
