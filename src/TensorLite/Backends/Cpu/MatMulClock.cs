using TensorLite.Autograd;

namespace TensorLite.Backends.Cpu;

/// <summary>
/// While the op profiler is on, the wall time and flops of the GEMMs that matmul ops hand to the CPU backend, so a
/// step's profile can tell the GEMM kernels from what the matmul ops do around them (views, copies, gradient sums).
/// Only <see cref="CpuBackend.MatMul"/> is timed (on the profiler's clock); GEMMs that other kernels call (attention) are part of those ops.
/// </summary>
internal static class MatMulClock
{
    private static long _ticks, _flops, _calls;

    /// <summary>Milliseconds, flops and calls since the last <see cref="Reset"/>.</summary>
    public static (double Milliseconds, double Flops, long Calls) Totals =>
        (OpProfiler.Milliseconds(Interlocked.Read(ref _ticks)), Interlocked.Read(ref _flops), Interlocked.Read(ref _calls));

    public static void Reset()
    {
        Interlocked.Exchange(ref _ticks, 0);
        Interlocked.Exchange(ref _flops, 0);
        Interlocked.Exchange(ref _calls, 0);
    }

    /// <summary>A timestamp to pass to <see cref="Stop"/>, or 0 when profiling is off.</summary>
    public static long Start() => OpProfiler.Enabled ? OpProfiler.Now() : 0;

    public static void Stop(long started, long flops)
    {
        if (started == 0) return;
        Interlocked.Add(ref _ticks, OpProfiler.Now() - started);
        Interlocked.Add(ref _flops, flops);
        Interlocked.Increment(ref _calls);
    }
}
