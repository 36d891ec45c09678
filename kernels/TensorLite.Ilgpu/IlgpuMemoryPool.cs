using System.Collections.Concurrent;
using ILGPU;
using ILGPU.Runtime;
using TensorLite.Memory;

namespace TensorLite.Ilgpu;

/// <summary>
/// A caching device allocator following <see cref="BlockCachePolicy.Device"/>: buffers are kept in exact-size free lists
/// (sizes rounded up to 256 bytes), so a training step that allocates the same shapes every step stops asking the
/// driver for memory after the first. When the device is out of memory the cache is given back and the allocation
/// retried once; if it still fails, an <see cref="OutOfMemoryException"/> reaches the trainer, which names the step and
/// the category that grew. Buffers released from a finalizer are queued and taken back on the next
/// <see cref="Rent"/>, so device memory is never touched from the finalizer thread.
/// </summary>
public sealed class IlgpuMemoryPool : IDisposable
{
    private static readonly BlockCachePolicy Policy = BlockCachePolicy.Device;
    private readonly Accelerator _accelerator;
    private readonly object _gate = new();
    private readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> _free = new();
    private readonly ConcurrentQueue<MemoryBuffer1D<byte, Stride1D.Dense>> _orphans = new();
    // Every rented buffer stays referenced here until it is back in the free lists. When a forgotten tensor becomes
    // garbage, its storage and the ILGPU buffer become unreachable together and the GC may finalize the buffer (freeing
    // its memory) before the storage's finalizer hands it back; holding it here keeps an orphan usable.
    private readonly HashSet<MemoryBuffer1D<byte, Stride1D.Dense>> _rented = new(ReferenceEqualityComparer.Instance);
    private long _liveBytes, _peakBytes, _cachedBytes, _deviceAllocations, _reservedBytes, _peakReservedBytes;
    private bool _disposed;

    internal IlgpuMemoryPool(Accelerator accelerator) => _accelerator = accelerator;

    /// <summary>Bytes held by live storages.</summary>
    public long LiveBytes => Interlocked.Read(ref _liveBytes);

    /// <summary>The high-water mark of <see cref="LiveBytes"/> since the last <see cref="ResetPeak"/>.</summary>
    public long PeakBytes => Interlocked.Read(ref _peakBytes);

    /// <summary>Bytes kept in the free lists for reuse.</summary>
    public long CachedBytes => Interlocked.Read(ref _cachedBytes);

    /// <summary>Bytes taken from the device and not yet given back: live plus cached buffers.</summary>
    public long ReservedBytes => Interlocked.Read(ref _reservedBytes);

    /// <summary>The high-water mark of <see cref="ReservedBytes"/> (never reset): the device memory the run needed.</summary>
    public long PeakReservedBytes => Interlocked.Read(ref _peakReservedBytes);

    /// <summary>How many buffers were requested from the device (cache misses).</summary>
    public long DeviceAllocations => Interlocked.Read(ref _deviceAllocations);

    public void ResetPeak()
    {
        lock (_gate) _peakBytes = _liveBytes;
    }

    internal MemoryBuffer1D<byte, Stride1D.Dense> Rent(long byteLength)
    {
        long size = Policy.RoundUp(byteLength);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            while (_orphans.TryDequeue(out var orphan))
            {
                _rented.Remove(orphan);
                PushFree(orphan);
            }
            _liveBytes += size;
            if (_liveBytes > _peakBytes) _peakBytes = _liveBytes;
            if (_free.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                _cachedBytes -= size;
                var cached = stack.Pop();
                _rented.Add(cached);
                return cached;
            }
            var buffer = AllocateOnDevice(size);
            _rented.Add(buffer);
            _deviceAllocations++;
            _reservedBytes += size;
            if (_reservedBytes > _peakReservedBytes) _peakReservedBytes = _reservedBytes;
            return buffer;
        }
    }

    private MemoryBuffer1D<byte, Stride1D.Dense> AllocateOnDevice(long size)
    {
        try
        {
            return _accelerator.Allocate1D<byte>(size);
        }
        catch (Exception e) when (e is AcceleratorException or OutOfMemoryException)
        {
            if (_cachedBytes == 0) throw OutOfDeviceMemory(size, e);
        }
        TrimCacheLocked(); // what other sizes left behind may be exactly what this one needs
        try
        {
            return _accelerator.Allocate1D<byte>(size);
        }
        catch (Exception e) when (e is AcceleratorException or OutOfMemoryException)
        {
            throw OutOfDeviceMemory(size, e);
        }
    }

    private OutOfMemoryException OutOfDeviceMemory(long size, Exception cause) =>
        new($"The device could not provide {size:N0} more bytes ({_reservedBytes:N0} held by this pool).", cause);

    internal void Return(MemoryBuffer1D<byte, Stride1D.Dense> buffer, bool fromFinalizer)
    {
        if (fromFinalizer)
        {
            Interlocked.Add(ref _liveBytes, -buffer.Length);
            Interlocked.Add(ref _cachedBytes, buffer.Length);
            _orphans.Enqueue(buffer);
            return;
        }
        lock (_gate)
        {
            _rented.Remove(buffer);
            _liveBytes -= buffer.Length;
            if (_disposed) { _reservedBytes -= buffer.Length; buffer.Dispose(); return; }
            _cachedBytes += buffer.Length;
            PushFree(buffer);
        }
    }

    private void PushFree(MemoryBuffer1D<byte, Stride1D.Dense> buffer)
    {
        if (!_free.TryGetValue(buffer.Length, out var stack)) _free[buffer.Length] = stack = new();
        stack.Push(buffer);
    }

    /// <summary>Gives every cached buffer back to the device.</summary>
    public void TrimCache()
    {
        lock (_gate) TrimCacheLocked();
    }

    private void TrimCacheLocked()
    {
        while (_orphans.TryDequeue(out var orphan))
        {
            _rented.Remove(orphan);
            orphan.Dispose();
        }
        foreach (var stack in _free.Values)
            while (stack.Count > 0) stack.Pop().Dispose();
        _free.Clear();
        _reservedBytes -= _cachedBytes;
        _cachedBytes = 0;
    }

    public void Dispose()
    {
        TrimCache();
        lock (_gate) _disposed = true;
    }
}
