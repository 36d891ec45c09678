using System.Diagnostics;

namespace TensorLite.Autograd;

/// <summary>
/// A coarse per-op profile of forward and backward time, for finding where a training step goes.
/// Off unless enabled (or the environment variable TENSORLITE_PROFILE=1 is set). Forward time is the
/// time since the previous recorded op on the same thread, so glue code between ops is attributed
/// to the op that follows it; backward time is measured around each node's backward function.
/// </summary>
internal static class OpProfiler
{
    private static readonly Dictionary<string, (double Ms, long Calls)> Totals = new();
    [ThreadStatic] private static long _lastTimestamp;

    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("TENSORLITE_PROFILE") == "1";

    internal static void MarkForward(string op)
    {
        long now = Stopwatch.GetTimestamp();
        if (_lastTimestamp != 0) Add("fwd " + op, Stopwatch.GetElapsedTime(_lastTimestamp, now).TotalMilliseconds);
        _lastTimestamp = now;
    }

    internal static void AddBackward(string op, long startTimestamp)
    {
        Add("bwd " + op, Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds);
        _lastTimestamp = 0;
    }

    private static void Add(string key, double ms)
    {
        lock (Totals)
        {
            var (t, c) = Totals.GetValueOrDefault(key);
            Totals[key] = (t + ms, c + 1);
        }
    }

    public static void Reset()
    {
        lock (Totals) Totals.Clear();
        _lastTimestamp = 0;
    }

    /// <summary>The recorded totals, largest first: (label, milliseconds, calls).</summary>
    public static IReadOnlyList<(string Op, double Milliseconds, long Calls)> Snapshot()
    {
        lock (Totals) return Totals.Select(kv => (kv.Key, kv.Value.Ms, kv.Value.Calls)).OrderByDescending(x => x.Ms).ToList();
    }
}
