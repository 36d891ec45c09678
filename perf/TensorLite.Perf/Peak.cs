using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace TensorLite.Perf;

/// <summary>
/// Tight-loop FMA throughput: 16 independent Vector512 accumulators (FMA latency 4 cycles × 2 FMA
/// pipes needs ≥ 8 in flight), no memory traffic. This is the ceiling any fp32 GEMM here can reach.
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

    static double FlopsPerCall(long iterations) => 2.0 * 16 * Accumulators * iterations;

    /// <summary>Median GFLOP/s over <paramref name="reps"/> runs, each thread running the loop once.</summary>
    public static double Measure(int threads, int reps = 7, long iterations = Iterations)
    {
        FmaLoop(1000, 1f);
        var results = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            using var start = new Barrier(threads + 1);
            var ts = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                ts[t] = new Thread(() =>
                {
                    start.SignalAndWait();
                    FmaLoop(iterations, 1f);
                });
                ts[t].Start();
            }
            start.SignalAndWait();
            var sw = Stopwatch.StartNew();
            foreach (var t in ts) t.Join();
            sw.Stop();
            results[r] = threads * FlopsPerCall(iterations) / sw.Elapsed.TotalSeconds / 1e9;
        }
        Array.Sort(results);
        return results[reps / 2];
    }

    public static void Run()
    {
        Console.WriteLine($"Vector512.IsHardwareAccelerated={Vector512.IsHardwareAccelerated}, ProcessorCount={Environment.ProcessorCount}");
        for (int threads = 1; threads <= Math.Max(2, Environment.ProcessorCount); threads++)
            Console.WriteLine($"FMA peak, {threads} thread(s): {Measure(threads):F1} GFLOP/s (median of 7)");
    }
}
