using TensorLite.Memory;

namespace TensorLite.Backends.Meta;

/// <summary>
/// A backend that allocates nothing and computes nothing, but counts every tensor the program would create, in its
/// own <see cref="MemoryLedger"/>. Running a real training step on it (shapes and control flow are real; values read
/// back are zeros) gives that step's exact tensor-memory timeline in milliseconds, for any model size: the memory
/// planner is built on it. Create one per plan, so plans never share counters. Like every backend it implements each
/// <see cref="IBackend"/> member itself (none has a default body), so no reference composes real work (host copies)
/// out of the no-ops.
/// </summary>
internal sealed partial class MetaBackend : IBackend
{
    public string Name => "meta";
    public string Description => "meta backend: shapes and byte counts only, nothing computed";
    public bool ComputesValues => false;

    public MemoryLedger Memory { get; } = new();

    private readonly Dictionary<long, int> _cachedBlocks = new();
    private long _reserved, _cached;

    /// <summary>The allocator whose caching this backend replays (the CPU pool unless a plan is for the GPU).</summary>
    public BlockCachePolicy Policy { get; init; } = BlockCachePolicy.Cpu;

    /// <summary>The high-water mark of the memory the allocator would hold (live blocks plus its cache of freed ones),
    /// simulated with <see cref="Policy"/>: reuse by exact rounded size, caching as the policy allows.</summary>
    public long PeakReservedBytes { get; private set; }

    /// <summary>Forgets the simulated cache, as the allocators' TrimCache does.</summary>
    public void TrimCache()
    {
        _reserved -= _cached;
        _cached = 0;
        _cachedBlocks.Clear();
    }

    public Storage Allocate(long byteLength)
    {
        var storage = new MetaStorage(this, byteLength);
        long size = Policy.RoundUp(byteLength);
        if (_cachedBlocks.TryGetValue(size, out int count) && count > 0)
        {
            _cachedBlocks[size] = count - 1;
            _cached -= size;
        }
        else PeakReservedBytes = Math.Max(PeakReservedBytes, _reserved += size);
        return storage;
    }

    private void Release(long byteLength)
    {
        long size = Policy.RoundUp(byteLength);
        if (!Policy.Caches(size, _cached))
        {
            _reserved -= size;
            return;
        }
        _cachedBlocks[size] = _cachedBlocks.GetValueOrDefault(size) + 1;
        _cached += size;
    }

    private sealed class MetaStorage(MetaBackend backend, long byteLength) : Storage(backend, byteLength)
    {
        // A storage nobody disposed goes back to the system from its finalizer (as on the CPU), off the planning thread:
        // leave the simulated cache alone.
        protected override void Free(bool fromFinalizer)
        {
            if (!fromFinalizer) backend.Release(ByteLength);
        }
    }

    // Reads return zeros: losses are 0, norms are 0, selected indices are the first ones.
    public void CopyToHost(Tensor source, Span<byte> destination) => destination.Clear();
    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination) { }
    public void Fill(Tensor destination, double value) { }
    public void Copy(Tensor source, Tensor destination) { }
    public void Unary(UnaryOp op, Tensor x, Tensor y, float p0, float p1) { }
    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor gy, Tensor gx, float p0, float p1) { }
    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y) { }
    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y) { }
}
