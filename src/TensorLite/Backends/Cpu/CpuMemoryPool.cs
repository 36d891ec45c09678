using System.Runtime.InteropServices;
using TensorLite.Memory;

namespace TensorLite.Backends.Cpu;

/// <summary>
/// A caching allocator for native CPU memory, following <see cref="BlockCachePolicy.Cpu"/>: blocks are cached by exact
/// (64-byte rounded) size, so after a training step's first allocations every later one is a cache hit and no memory
/// is requested from the system, while large blocks and anything past the cache limit go straight back.
/// </summary>
internal static unsafe class CpuMemoryPool
{
    private static readonly BlockCachePolicy Policy = BlockCachePolicy.Cpu;

    static CpuMemoryPool() => NativeHeap.ReturnLargeBlocksToTheSystem();

    private static readonly object Gate = new();
    private static readonly Dictionary<long, Stack<nint>> Free = new();
    private static long _liveBytes, _peakBytes, _cachedBytes, _systemAllocations, _peakReservedBytes;

    /// <summary>Bytes held by live storages (tensors and their views).</summary>
    public static long LiveBytes => Interlocked.Read(ref _liveBytes);

    /// <summary>The high-water mark of <see cref="LiveBytes"/> since the last <see cref="ResetPeak"/>.</summary>
    public static long PeakBytes => Interlocked.Read(ref _peakBytes);

    /// <summary>Bytes kept in the cache for reuse (not live, not yet returned to the system).</summary>
    public static long CachedBytes => Interlocked.Read(ref _cachedBytes);

    /// <summary>The high-water mark of live plus cached bytes: what the pool has held from the system at most.</summary>
    public static long PeakReservedBytes => Interlocked.Read(ref _peakReservedBytes);

    /// <summary>How many times memory was requested from the system (cache misses).</summary>
    public static long SystemAllocations => Interlocked.Read(ref _systemAllocations);

    public static void ResetPeak()
    {
        lock (Gate) _peakBytes = _liveBytes;
    }

    internal static byte* Rent(long byteLength)
    {
        long size = Policy.RoundUp(byteLength);
        lock (Gate)
        {
            _liveBytes += size;
            if (_liveBytes > _peakBytes) _peakBytes = _liveBytes;
            if (Free.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                _cachedBytes -= size;
                return (byte*)stack.Pop();
            }
            _systemAllocations++;
            _peakReservedBytes = Math.Max(_peakReservedBytes, _liveBytes + _cachedBytes);
        }
        return (byte*)NativeMemory.AlignedAlloc((nuint)size, (nuint)Policy.Granule);
    }

    internal static void Return(byte* pointer, long byteLength, bool toSystem)
    {
        long size = Policy.RoundUp(byteLength);
        if (toSystem)
        {
            // Called from a finalizer: keep the lock-free path and give the memory back to the system.
            Interlocked.Add(ref _liveBytes, -size);
            NativeMemory.AlignedFree(pointer);
            return;
        }
        lock (Gate)
        {
            _liveBytes -= size;
            if (!Policy.Caches(size, _cachedBytes))
            {
                NativeMemory.AlignedFree(pointer);
                return;
            }
            if (!Free.TryGetValue(size, out var stack)) Free[size] = stack = new Stack<nint>();
            stack.Push((nint)pointer);
            _cachedBytes += size;
        }
    }

    /// <summary>Returns every cached block to the system.</summary>
    public static void TrimCache()
    {
        lock (Gate)
        {
            foreach (var stack in Free.Values)
                while (stack.Count > 0) NativeMemory.AlignedFree((void*)stack.Pop());
            Free.Clear();
            _cachedBytes = 0;
        }
    }

}

/// <summary>
/// glibc's allocator serves blocks below its mmap threshold from heap arenas and keeps them after they are freed,
/// and it raises that threshold up to 32 MiB as the program frees large blocks. Blocks the pool does not cache (the
/// big ones, and those past its cache limit) then stay resident: about 1 GiB of RSS at LLaMA-1B scale that no tensor
/// uses. Fixing the threshold at 1 MiB makes every such block an mmap that goes back to the system when freed.
/// </summary>
internal static partial class NativeHeap
{
    private const int MmapThreshold = -3; // glibc's M_MMAP_THRESHOLD

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int MallOpt(int parameter, int value);

    public static void ReturnLargeBlocksToTheSystem()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            MallOpt(MmapThreshold, 1 << 20);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (e.g. musl): its allocator has no such threshold to pin.
        }
    }
}
