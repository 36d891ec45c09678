using System.Collections.Concurrent;
using ILGPU;
using ILGPU.Runtime;

namespace TensorLite.Kernels;

/// <summary>
/// A caching device allocator: buffers are kept in exact-size free lists (sizes rounded up to 256 bytes), so a
/// training step that allocates the same shapes every step stops asking the driver for memory after the first.
/// Buffers released from a finalizer are queued and taken back on the next <see cref="Rent"/>, so device memory
/// is never touched from the finalizer thread.
/// </summary>
public sealed class IlgpuMemoryPool : IDisposable
{
    private const long Granule = 256;
    private readonly Accelerator _accelerator;
    private readonly object _gate = new();
    private readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> _free = new();
    private readonly ConcurrentQueue<MemoryBuffer1D<byte, Stride1D.Dense>> _orphans = new();
    // Every buffer this pool allocated and has not freed. ILGPU buffers have finalizers of their own: without this
    // reference, a storage that was never disposed would become unreachable together with its buffer, and the GC
    // would free the device memory in the same cycle in which the storage's finalizer queues the buffer for reuse
    // (the next tensor of that size would then be written through a freed pointer).
    private readonly HashSet<MemoryBuffer1D<byte, Stride1D.Dense>> _owned = new(ReferenceEqualityComparer.Instance);
    private long _liveBytes, _peakBytes, _cachedBytes, _deviceAllocations;
    private bool _disposed;

    internal IlgpuMemoryPool(Accelerator accelerator) => _accelerator = accelerator;

    /// <summary>Bytes held by live storages.</summary>
    public long LiveBytes => Interlocked.Read(ref _liveBytes);

    /// <summary>The high-water mark of <see cref="LiveBytes"/> since the last <see cref="ResetPeak"/>.</summary>
    public long PeakBytes => Interlocked.Read(ref _peakBytes);

    /// <summary>Bytes kept in the free lists for reuse.</summary>
    public long CachedBytes => Interlocked.Read(ref _cachedBytes);

    /// <summary>How many buffers were requested from the device (cache misses).</summary>
    public long DeviceAllocations => Interlocked.Read(ref _deviceAllocations);

    public static long RoundUp(long bytes) => Math.Max(Granule, (bytes + Granule - 1) / Granule * Granule);

    public void ResetPeak()
    {
        lock (_gate) _peakBytes = _liveBytes;
    }

    internal MemoryBuffer1D<byte, Stride1D.Dense> Rent(long byteLength)
    {
        long size = RoundUp(byteLength);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            while (_orphans.TryDequeue(out var orphan)) PushFree(orphan);
            _liveBytes += size;
            if (_liveBytes > _peakBytes) _peakBytes = _liveBytes;
            if (_free.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                _cachedBytes -= size;
                return stack.Pop();
            }
            _deviceAllocations++;
            var buffer = _accelerator.Allocate1D<byte>(size);
            _owned.Add(buffer);
            return buffer;
        }
    }

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
            _liveBytes -= buffer.Length;
            if (_disposed) { Free(buffer); return; }
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
        lock (_gate)
        {
            while (_orphans.TryDequeue(out var orphan)) Free(orphan);
            foreach (var stack in _free.Values)
                while (stack.Count > 0) Free(stack.Pop());
            _free.Clear();
            _cachedBytes = 0;
        }
    }

    private void Free(MemoryBuffer1D<byte, Stride1D.Dense> buffer)
    {
        _owned.Remove(buffer);
        buffer.Dispose();
    }

    public void Dispose()
    {
        TrimCache();
        lock (_gate) _disposed = true;
    }
}
