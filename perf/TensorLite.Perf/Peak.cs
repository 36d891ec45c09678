using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace TensorLite.Perf;

/// <summary>
/// Tight-loop FMA throughput at the widest hardware-accelerated vector width (FMA latency 4 cycles × 2 FMA
/// pipes needs ≥ 8 independent accumulators in flight), no memory traffic. This is the ceiling any fp32 GEMM
/// here can reach. Vector512 is only used where it is accelerated: elsewhere it is emulated in software and
/// would understate the peak by half or more.
/// </summary>
public static class Peak
{
    const int Accumulators = 16;
    const long Iterations = 5_000_000; // 16 FMAs × 16 lanes × 2 flops each per iteration

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static float FmaLoop(long iterations, float seed)
    {
        var m = Vector512.Create(0.999999f);
        var add = Vector512.Create(1e-7f);
        var a0 = Vector512.Create(seed); var a1 = a0 + add; var a2 = a1 + add; var a3 = a2 + add;
        var a4 = a3 + add; var a5 = a4 + add; var a6 = a5 + add; var a7 = a6 + add;
        var a8 = a7 + add; var a9 = a8 + add; var a10 = a9 + add; var a11 = a10 + add;
        var a12 = a11 + add; var a13 = a12 + add; var a14 = a13 + add; var a15 = a14 + add;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Vector512.FusedMultiplyAdd(a0, m, add); a1 = Vector512.FusedMultiplyAdd(a1, m, add);
            a2 = Vector512.FusedMultiplyAdd(a2, m, add); a3 = Vector512.FusedMultiplyAdd(a3, m, add);
            a4 = Vector512.FusedMultiplyAdd(a4, m, add); a5 = Vector512.FusedMultiplyAdd(a5, m, add);
            a6 = Vector512.FusedMultiplyAdd(a6, m, add); a7 = Vector512.FusedMultiplyAdd(a7, m, add);
            a8 = Vector512.FusedMultiplyAdd(a8, m, add); a9 = Vector512.FusedMultiplyAdd(a9, m, add);
            a10 = Vector512.FusedMultiplyAdd(a10, m, add); a11 = Vector512.FusedMultiplyAdd(a11, m, add);
            a12 = Vector512.FusedMultiplyAdd(a12, m, add); a13 = Vector512.FusedMultiplyAdd(a13, m, add);
            a14 = Vector512.FusedMultiplyAdd(a14, m, add); a15 = Vector512.FusedMultiplyAdd(a15, m, add);
        }
        var s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15;
        return Vector512.Sum(s);
    }

    /// <summary>Twelve Vector256 accumulators plus the two constants fit AVX2's 16 ymm registers without spills.</summary>
    const int Accumulators256 = 12;

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static float FmaLoop256(long iterations, float seed)
    {
        var m = Vector256.Create(0.999999f);
        var add = Vector256.Create(1e-7f);
        var a0 = Vector256.Create(seed); var a1 = a0 + add; var a2 = a1 + add; var a3 = a2 + add;
        var a4 = a3 + add; var a5 = a4 + add; var a6 = a5 + add; var a7 = a6 + add;
        var a8 = a7 + add; var a9 = a8 + add; var a10 = a9 + add; var a11 = a10 + add;
        // twice the iterations at half the width: the same flop count as the Vector512 loop per call
        for (long i = 0; i < iterations * 2; i++)
        {
            a0 = Vector256.FusedMultiplyAdd(a0, m, add); a1 = Vector256.FusedMultiplyAdd(a1, m, add);
            a2 = Vector256.FusedMultiplyAdd(a2, m, add); a3 = Vector256.FusedMultiplyAdd(a3, m, add);
            a4 = Vector256.FusedMultiplyAdd(a4, m, add); a5 = Vector256.FusedMultiplyAdd(a5, m, add);
            a6 = Vector256.FusedMultiplyAdd(a6, m, add); a7 = Vector256.FusedMultiplyAdd(a7, m, add);
            a8 = Vector256.FusedMultiplyAdd(a8, m, add); a9 = Vector256.FusedMultiplyAdd(a9, m, add);
            a10 = Vector256.FusedMultiplyAdd(a10, m, add); a11 = Vector256.FusedMultiplyAdd(a11, m, add);
        }
        var s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
        return Vector256.Sum(s);
    }

    static readonly bool Wide = Vector512.IsHardwareAccelerated;

    /// <summary>The vector width the peak loop runs at (bits).</summary>
    public static int WidthBits => Wide ? 512 : 256;

    static void Loop(long iterations, float seed)
    {
        if (Wide) FmaLoop(iterations, seed);
        else FmaLoop256(iterations, seed);
    }

    static double FlopsPerCall(long iterations) => Wide
        ? 2.0 * 16 * Accumulators * iterations
        : 2.0 * 8 * Accumulators256 * iterations * 2;

    /// <summary>
    /// Median GFLOP/s over <paramref name="reps"/> runs, each thread running the loop once. A run's figure is the
    /// sum of the threads' own rates (each timed from the common start to its own finish), not the total work over
    /// the slowest thread's time: on a machine shared with other load one thread is often descheduled for a while,
    /// and the GEMM, which hands out work by ticket, lets the other thread do more meanwhile, so the slowest-thread
    /// figure would understate what the cores delivered.
    /// </summary>
    public static double Measure(int threads, int reps = 7, long iterations = Iterations) =>
        MeasureBoth(threads, reps, iterations).Wall;

    /// <summary>
    /// Median over <paramref name="reps"/> runs of the wall-time figure (<see cref="Measure"/>) and of the rate per
    /// CPU-second of one thread (flops over the thread's own CPU time, <see cref="CpuClock"/>): the latter is what a
    /// core delivers while it runs this code, whatever the other load on the machine.
    /// </summary>
    public static (double Wall, double PerCpuSecond) MeasureBoth(int threads, int reps = 7, long iterations = Iterations)
    {
        Loop(1000, 1f);
        var wall = new double[reps];
        var cpu = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            using var start = new Barrier(threads + 1);
            var ts = new Thread[threads];
            var rates = new double[threads];
            var cpuRates = new double[threads];
            for (int t = 0; t < threads; t++)
            {
                int id = t;
                ts[t] = new Thread(() =>
                {
                    start.SignalAndWait();
                    long t0 = Stopwatch.GetTimestamp();
                    double c0 = CpuClock.Thread();
                    Loop(iterations, 1f);
                    double flops = FlopsPerCall(iterations) / 1e9;
                    cpuRates[id] = flops / (CpuClock.Thread() - c0);
                    rates[id] = flops / Stopwatch.GetElapsedTime(t0).TotalSeconds;
                });
                ts[t].Start();
            }
            start.SignalAndWait();
            foreach (var t in ts) t.Join();
            wall[r] = rates.Sum();
            cpu[r] = cpuRates.Average();
        }
        Array.Sort(wall);
        Array.Sort(cpu);
        return (wall[reps / 2], cpu[reps / 2]);
    }

    public static void Run()
    {
        Console.WriteLine($"Vector512.IsHardwareAccelerated={Vector512.IsHardwareAccelerated}, peak loop width {WidthBits} bits, ProcessorCount={Environment.ProcessorCount}");
        for (int threads = 1; threads <= Math.Max(2, Environment.ProcessorCount); threads++)
        {
            var (w, c) = MeasureBoth(threads);
            Console.WriteLine($"FMA peak, {threads} thread(s): {w:F1} GFLOP/s (median of 7); per CPU-second of one thread {c:F1}");
        }
    }
}
