namespace TensorLite.Optim.Offload;

/// <summary>
/// The offload engine's page-locked staging buffer: on a device that offers page-locked host memory
/// (<see cref="IPageLockedStaging"/>: the ILGPU backend, CUDA or its CPU accelerator) every device ↔ host copy of a
/// compressed gradient, direction or weights goes through one buffer of at most <see cref="MaxBytes"/>, chunk by chunk,
/// and a memcpy on the host side. The host state itself stays in CPU tensors, which the CPU backend's kernels need.
/// When the device cannot page-lock memory (or has none to offer, as the CPU backend, where device and host are the
/// same memory), copies go through ordinary host memory as before, and <see cref="Description"/> says why.
/// </summary>
internal sealed class PageLockedStaging(int maxBytes = PageLockedStaging.MaxBytes) : IDisposable
{
    /// <summary>The largest staging buffer by default: big enough for full-speed DMA copies, small next to the host state.</summary>
    public const int MaxBytes = 8 << 20;

    private IPageLockedBuffer? _buffer;
    private IBackend? _device;
    private string? _failure;
    /// <summary>The size of the last staging buffer allocated (kept after <see cref="Dispose"/>, for the run's report).</summary>
    private int _bytes;

    /// <summary>How the engine's copies travel (so far), for the run's report.</summary>
    public string Description => _bytes > 0
        ? $"through a page-locked staging buffer ({_bytes >> 10} KiB)"
        : _failure != null ? $"through ordinary host memory (page-locking failed: {_failure})" : "through ordinary host memory";

    /// <summary>The staging buffer for copies of <paramref name="bytes"/> bytes to or from <paramref name="device"/>,
    /// grown up to the largest size (<see cref="MaxBytes"/> by default) as needed; null when copies go through ordinary host memory.</summary>
    public IPageLockedBuffer? For(IBackend device, long bytes)
    {
        if (device is not IPageLockedStaging staging || _failure != null || bytes == 0) return null;
        if (_device != null && _device != device) return null; // one device per run; another one copies directly
        int wanted = (int)Math.Min(maxBytes, bytes);
        if (_buffer != null && _buffer.Span.Length >= wanted) return _buffer;
        _buffer?.Dispose();
        _buffer = null;
        try
        {
            _buffer = staging.AllocatePageLocked(Math.Max(wanted, Math.Min(maxBytes, 1 << 16)));
            _bytes = _buffer.Span.Length;
            _device = device;
            return _buffer;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _failure = e.Message;
            return null;
        }
    }

    /// <summary>Frees the staging buffer.</summary>
    public void Dispose()
    {
        _buffer?.Dispose();
        _buffer = null;
    }
}
