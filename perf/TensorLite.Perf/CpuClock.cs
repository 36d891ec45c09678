using System.Diagnostics;
using System.Runtime.InteropServices;

namespace TensorLite.Perf;

/// <summary>
/// CPU time consumed (Linux clock_gettime: the calling thread's, or the whole process's), in seconds. On a machine
/// shared with other load, wall time also counts the time a thread waited to be scheduled; flops per CPU-second do
/// not, so they show what the code does with the core time it gets. Elsewhere these fall back to wall time.
/// </summary>
public static unsafe class CpuClock
{
    const int ClockProcessCpuTime = 2, ClockThreadCpuTime = 3;

    struct TimeSpec
    {
        public long Seconds, Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    static extern int ClockGetTime(int clock, TimeSpec* ts);

    static readonly bool Available = OperatingSystem.IsLinux() && Probe();

    static bool Probe()
    {
        try
        {
            TimeSpec ts;
            return ClockGetTime(ClockThreadCpuTime, &ts) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>False where the figures are wall time (no clock_gettime).</summary>
    public static bool IsCpuTime => Available;

    /// <summary>CPU seconds the calling thread has run.</summary>
    public static double Thread() => Read(ClockThreadCpuTime);

    /// <summary>CPU seconds all threads of this process have run (spin-waiting included).</summary>
    public static double Process() => Read(ClockProcessCpuTime);

    static double Read(int clock)
    {
        if (!Available) return Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
        TimeSpec ts;
        ClockGetTime(clock, &ts);
        return ts.Seconds + ts.Nanoseconds * 1e-9;
    }
}
