using System.Diagnostics;

namespace TensorLite.Distributed;

/// <summary>A communicator that adds up the wall time this rank spends in collectives — the transfer, and the wait for
/// slower ranks — so a run can report its communication share. Disposing it leaves the wrapped one open (its creator
/// owns it).</summary>
public sealed class TimedCommunicator(ICommunicator inner) : ICommunicator
{
    private readonly Stopwatch _clock = new();

    /// <summary>Time spent in collectives so far.</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    public int Rank => inner.Rank;
    public int WorldSize => inner.WorldSize;
    public string Description => inner.Description;

    public void AllReduceSum(Span<float> values)
    {
        _clock.Start();
        try { inner.AllReduceSum(values); }
        finally { _clock.Stop(); }
    }

    public void AllReduceSum(Span<double> values)
    {
        _clock.Start();
        try { inner.AllReduceSum(values); }
        finally { _clock.Stop(); }
    }

    public void Broadcast(Span<byte> data, int root)
    {
        _clock.Start();
        try { inner.Broadcast(data, root); }
        finally { _clock.Stop(); }
    }

    public void Dispose() { }
}
