namespace TensorLite.Optim.Offload;

/// <summary>
/// The host worker's queue of offloaded updates. It hands out the most urgent item first: the one the device will wait
/// for soonest. Updates the device applies at the end of the step have stage −1 and come first, in arrival order; updates
/// deferred into the next forward come after them, lowest forward stage first. These arrive last in the backward (the
/// layers nearest the input) but are needed first in the next forward, so the host serves them last come, first served
/// (the reference's LCFS for the input-side layers).
/// </summary>
internal sealed class HostWorkQueue<T>(Func<T, int> stage, Func<T, long> sequence) where T : class
{
    private readonly List<T> _items = new();
    private bool _complete;

    /// <summary>Queues <paramref name="item"/> and wakes the worker.</summary>
    public void Add(T item)
    {
        lock (_items)
        {
            if (_complete) throw new InvalidOperationException("The offload engine's host queue is closed.");
            _items.Add(item);
            Monitor.Pulse(_items);
        }
    }

    /// <summary>The most urgent item, waiting for one; null once <see cref="Complete"/> was called and the queue is empty.</summary>
    public T? Take()
    {
        lock (_items)
        {
            while (_items.Count == 0)
            {
                if (_complete) return null;
                Monitor.Wait(_items);
            }
            int best = 0;
            for (int i = 1; i < _items.Count; i++)
                if ((stage(_items[i]), sequence(_items[i])).CompareTo((stage(_items[best]), sequence(_items[best]))) < 0) best = i;
            var item = _items[best];
            _items.RemoveAt(best);
            return item;
        }
    }

    /// <summary>Accepts no more items; <see cref="Take"/> returns null once the queued ones are taken.</summary>
    public void Complete()
    {
        lock (_items)
        {
            _complete = true;
            Monitor.PulseAll(_items);
        }
    }
}
