namespace TensorLite.Memory;

/// <summary>What a block of tensor memory is for. The planner predicts, and the trainer reports, bytes per category.</summary>
public enum MemoryCategory
{
    /// <summary>Forward results kept for backward, intermediate gradients and every other step temporary (the default).</summary>
    Activations,
    /// <summary>Model parameters (and fp32 master copies of bf16 weights).</summary>
    Weights,
    /// <summary>Accumulated parameter gradients (<see cref="Tensor.Grad"/>).</summary>
    Gradients,
    /// <summary>The inner optimizer's moments (AdamW m and v, 8-bit codes and scales, Adafactor factors).</summary>
    OptimizerState,
    /// <summary>Projection bases, selected indices, online-PCA moments, counters and generator state.</summary>
    ProjectorState,
    /// <summary>Temporaries of the optimizer step (projected gradients, directions, refresh work).</summary>
    Workspace,
}

/// <summary>Bytes per <see cref="MemoryCategory"/> at one moment.</summary>
public readonly record struct MemoryBreakdown(long Activations, long Weights, long Gradients, long OptimizerState,
    long ProjectorState, long Workspace)
{
    /// <summary>The bytes of all categories together.</summary>
    public long Total => Activations + Weights + Gradients + OptimizerState + ProjectorState + Workspace;

    /// <summary>The bytes of one category.</summary>
    public long this[MemoryCategory category] => category switch
    {
        MemoryCategory.Activations => Activations,
        MemoryCategory.Weights => Weights,
        MemoryCategory.Gradients => Gradients,
        MemoryCategory.OptimizerState => OptimizerState,
        MemoryCategory.ProjectorState => ProjectorState,
        _ => Workspace,
    };

    internal static MemoryBreakdown From(long[] bytes) => new(bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]);

    /// <summary>Categories with their bytes, in declaration order.</summary>
    public IEnumerable<(MemoryCategory Category, long Bytes)> Items()
    {
        var self = this;
        return Enum.GetValues<MemoryCategory>().Select(c => (c, self[c]));
    }
}

/// <summary>
/// Live and peak tensor bytes of one backend, by category. Every <see cref="Storage"/> is counted from creation
/// to release under the category that was current on its thread when it was created
/// (<see cref="Categorize"/>, default <see cref="MemoryCategory.Activations"/>) or that it was later tagged with
/// (<see cref="Tensor.Tag"/>). Bytes are the storages' exact sizes, before any allocator rounding, so the planner's
/// meta backend and a real backend count the same numbers for the same program.
/// </summary>
public sealed class MemoryLedger
{
    private static readonly int Count = Enum.GetValues<MemoryCategory>().Length;
    [ThreadStatic] private static MemoryCategory? _current;

    private readonly object _gate = new();
    private readonly long[] _live = new long[Count];
    private long[] _atPeak = new long[Count];
    private long _liveTotal, _peakTotal;

    /// <summary>The category new storages on this thread are counted under.</summary>
    public static MemoryCategory CurrentCategory => _current ?? MemoryCategory.Activations;

    /// <summary>Counts storages created on this thread under <paramref name="category"/> until disposed (scopes nest).</summary>
    public static CategoryScope Categorize(MemoryCategory category)
    {
        var previous = _current;
        _current = category;
        return new CategoryScope(previous);
    }

    /// <summary>Restores the previous category of this thread when disposed.</summary>
    public readonly struct CategoryScope(MemoryCategory? previous) : IDisposable
    {
        /// <summary>Makes the category that was current before the scope began current again.</summary>
        public void Dispose() => _current = previous;
    }

    /// <summary>Bytes of this backend's live tensors, all categories together.</summary>
    public long LiveBytes => Interlocked.Read(ref _liveTotal);

    /// <summary>When set, creating a tensor that would take live bytes past this limit throws
    /// <see cref="OutOfMemoryException"/> naming its category, before anything is allocated: a run fails fast at its
    /// budget instead of swapping or being killed.</summary>
    public long? LimitBytes { get; set; }

    /// <summary>The high-water mark of <see cref="LiveBytes"/> since the last <see cref="ResetPeak"/>.</summary>
    public long PeakBytes => Interlocked.Read(ref _peakTotal);

    /// <summary>Bytes of this backend's live tensors, by category.</summary>
    public MemoryBreakdown Live
    {
        get { lock (_gate) return MemoryBreakdown.From(_live); }
    }

    /// <summary>The categories' bytes at the moment <see cref="PeakBytes"/> was reached.</summary>
    public MemoryBreakdown AtPeak
    {
        get { lock (_gate) return MemoryBreakdown.From(_atPeak); }
    }

    /// <summary>Starts a new high-water mark from the live bytes now.</summary>
    public void ResetPeak()
    {
        lock (_gate)
        {
            _peakTotal = _liveTotal;
            _atPeak = (long[])_live.Clone();
        }
    }

    internal void Add(MemoryCategory category, long bytes)
    {
        lock (_gate)
        {
            if (bytes > 0 && LimitBytes is long limit && _liveTotal + bytes > limit)
                throw new OutOfMemoryException($"A {bytes:N0}-byte {category} tensor would take live tensor memory to " +
                    $"{_liveTotal + bytes:N0} bytes, past the limit of {limit:N0}.");
            _live[(int)category] += bytes;
            _liveTotal += bytes;
            if (_liveTotal > _peakTotal)
            {
                _peakTotal = _liveTotal;
                Array.Copy(_live, _atPeak, Count);
            }
        }
    }

    internal void Move(MemoryCategory from, MemoryCategory to, long bytes)
    {
        if (from == to) return;
        lock (_gate)
        {
            _live[(int)from] -= bytes;
            _live[(int)to] += bytes;
        }
    }
}
