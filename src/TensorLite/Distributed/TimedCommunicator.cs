using System.Diagnostics;

namespace TensorLite.Distributed;

/// <summary>A communicator that adds up the wall time this rank spends in collectives — the transfer, and the wait for
/// slower ranks — and the bytes it all-reduces, so a run can report its communication share and volume. Disposing it
/// leaves the wrapped one open (its creator owns it).</summary>
public sealed class TimedCommunicator(ICommunicator inner) : ICommunicator
{
    private readonly Stopwatch _clock = new();

    /// <summary>Time spent in collectives so far.</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>The bytes of every buffer all-reduced so far (4 per float32 element, 8 per float64): what this rank
    /// contributes to the sums; the bytes on the wire depend on the engine's algorithm.</summary>
    public long AllReducedBytes { get; private set; }

    /// <summary>The bytes of every buffer broadcast so far, sent or received (a sharded run's parameters and projections,
    /// the length that precedes a payload).</summary>
    public long BroadcastBytes { get; private set; }

    /// <inheritdoc/>
    public int Rank => inner.Rank;
    /// <inheritdoc/>
    public int WorldSize => inner.WorldSize;
    /// <inheritdoc/>
    public string Description => inner.Description;

    /// <inheritdoc/>
    public void AllReduceSum(Span<float> values)
    {
        AllReducedBytes += (long)values.Length * sizeof(float);
        _clock.Start();
        try { inner.AllReduceSum(values); }
        finally { _clock.Stop(); }
    }

    /// <inheritdoc/>
    public void AllReduceSum(Span<double> values)
    {
        AllReducedBytes += (long)values.Length * sizeof(double);
        _clock.Start();
        try { inner.AllReduceSum(values); }
        finally { _clock.Stop(); }
    }

    /// <inheritdoc/>
    public void Broadcast(Span<byte> data, int root)
    {
        BroadcastBytes += data.Length;
        _clock.Start();
        try { inner.Broadcast(data, root); }
        finally { _clock.Stop(); }
    }

    /// <inheritdoc/>
    public IBackend? CollectivesDevice => inner.CollectivesDevice;

    /// <inheritdoc/>
    public void AllReduceSumOnDevice(Tensor values)
    {
        AllReducedBytes += (long)values.Numel * sizeof(float);
        _clock.Start();
        try { inner.AllReduceSumOnDevice(values); }
        finally { _clock.Stop(); }
    }

    /// <inheritdoc/>
    public void BroadcastOnDevice(Tensor values, int root)
    {
        _clock.Start();
        try { inner.BroadcastOnDevice(values, root); }
        finally { _clock.Stop(); }
    }

    /// <inheritdoc/>
    public void Dispose() { }
}
