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

    /// <summary>The clock the profile reads (wall time unless a profiler sets another, e.g. the thread's CPU time, which
    /// on a shared machine leaves out the time the thread waited for a core) and its ticks per second.</summary>
    public static (Func<long> Now, double TicksPerSecond) Clock { get; set; } = (Stopwatch.GetTimestamp, Stopwatch.Frequency);

    internal static long Now() => Clock.Now();

    internal static double Milliseconds(long ticks) => ticks * 1000.0 / Clock.TicksPerSecond;

    internal static void MarkForward(string op)
    {
        long now = Now();
        if (_lastTimestamp != 0) Add("fwd " + op, Milliseconds(now - _lastTimestamp));
        _lastTimestamp = now;
    }

    internal static void AddBackward(string op, long startTimestamp)
    {
        Add("bwd " + op, Milliseconds(Now() - startTimestamp));
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
