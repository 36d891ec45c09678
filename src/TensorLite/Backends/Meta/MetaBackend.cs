using TensorLite.Memory;

namespace TensorLite.Backends.Meta;

/// <summary>
/// A backend that allocates nothing and computes nothing, but counts every tensor the program would create, in its
/// own <see cref="MemoryLedger"/>. Running a real training step on it (shapes and control flow are real; values read
/// back are zeros) gives that step's exact tensor-memory timeline in milliseconds, for any model size: the memory
/// planner is built on it. Create one per plan, so plans never share counters. Every member is overridden, including
/// those with default implementations, so no default composes real work (host copies) out of the no-ops.
/// </summary>
public sealed class MetaBackend : IBackend
{
    public string Name => "meta";
    public string Description => "meta backend: shapes and byte counts only, nothing computed";

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
    public void MatMul(Tensor a, Tensor b, Tensor c, float alpha, float beta) { }
    public void AdamWStep(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStepParams h) { }
    public void AdamDirection(Tensor grad, Tensor m, Tensor v, Tensor direction, AdamWStepParams h) { }
    public void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize) { }
    public void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize, ParamRounding rounding) { }
    public double SumOfSquares(Tensor x) => 0;
    public void BlockwiseQuantize(Tensor x, Tensor codes, Tensor absmax, bool signed) { }
    public void BlockwiseDequantize(Tensor codes, Tensor absmax, Tensor x, bool signed) { }
    public void AdamDirection8bit(Tensor grad, Tensor mCodes, Tensor mAbsmax, Tensor vCodes, Tensor vAbsmax, Tensor direction,
        AdamWStepParams h) { }
    public void CausalAttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, float scale) { }
    public void CausalAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO,
        Tensor dq, Tensor dk, Tensor dv, float scale) { }

    public long FindIndexOutOfRange(Tensor index, long size, out long value)
    {
        value = 0;
        return -1;
    }

    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y) { }
    public void IndexAdd(Tensor y, int axis, Tensor index, Tensor src) { }
    public void Gather(Tensor x, int axis, Tensor index, Tensor y) { }
    public void ScatterAdd(Tensor y, int axis, Tensor index, Tensor src) { }
    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y) { }
    public void Dropout(Tensor x, Tensor y, float p, ulong seed) { }
    public void HouseholderQr(Tensor a, Tensor q, Tensor r) { }
    public void Svd(Tensor a, Tensor u, Tensor s, Tensor vt) { }
    public void Softmax(Tensor x, Tensor y, int axis, bool log) { }
    public void SoftmaxBackward(Tensor y, Tensor gy, Tensor gx, int axis, bool log) { }
    public int CrossEntropy(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor loss) => Math.Max(1, targets.Numel);
    public void CrossEntropyBackward(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor gLoss, int count, Tensor gLogits) { }
    public void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd) { }
    public void RmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor gy, Tensor? gx, Tensor? gWeight) { }
    public void Rope(Tensor x, Tensor cos, Tensor sin, Tensor y, bool inverse) { }
    public void SwiGlu(Tensor gate, Tensor up, Tensor y) { }
    public void SwiGluBackward(Tensor gate, Tensor up, Tensor gy, Tensor? gGate, Tensor? gUp) { }
}
