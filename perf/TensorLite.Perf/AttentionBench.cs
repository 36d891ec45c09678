using TensorLite.Backends.Cpu;

namespace TensorLite.Perf;

/// <summary>
/// The CPU backend's causal attention kernels alone (contiguous float32 inputs, no autograd, no copies), forward and
/// backward, as the median over repetitions of the calling thread's CPU time, with the causal product flops per
/// CPU-second against the FMA peak loop's per CPU-second measured right before:
///
///   attention [batch=4] [heads=4] [seq=256] [headDim=64] [reps=20]
///
/// Run it with DOTNET_PROCESSOR_COUNT=1 for one core's work. Flops count the visible (i ≥ j) part only: forward
/// 2 products of B·H·T(T+1)/2·D multiply-adds, backward 5 (what a kernel that skips every masked score must do).
/// </summary>
public static class AttentionBench
{
    public static void Run(string[] args)
    {
        int batch = args.Length > 1 ? int.Parse(args[1]) : 4;
        int heads = args.Length > 2 ? int.Parse(args[2]) : 4;
        int seq = args.Length > 3 ? int.Parse(args[3]) : 256;
        int d = args.Length > 4 ? int.Parse(args[4]) : 64;
        int reps = args.Length > 5 ? int.Parse(args[5]) : 20;
        CpuGemm.MaxThreads = Environment.ProcessorCount;
        var g = new Generator(3);
        int[] shape = [batch, heads, seq, d];
        using var q = Tensor.RandN(shape, g);
        using var k = Tensor.RandN(shape, g);
        using var v = Tensor.RandN(shape, g);
        using var dO = Tensor.RandN(shape, g);
        using var o = Tensor.Empty(shape);
        using var lse = Tensor.Empty([batch, heads, seq]);
        using var dq = Tensor.Empty(shape);
        using var dk = Tensor.Empty(shape);
        using var dv = Tensor.Empty(shape);
        var backend = q.Backend;
        float scale = 1f / MathF.Sqrt(d);

        double peak = Peak.MeasureBoth(1).PerCpuSecond;
        var fwd = new List<double>();
        var bwd = new List<double>();
        for (int i = 0; i < reps + 3; i++)
        {
            double c0 = CpuClock.Thread();
            backend.CausalAttentionForward(q, k, v, o, lse, scale);
            double c1 = CpuClock.Thread();
            backend.CausalAttentionBackward(q, k, v, o, lse, dO, dq, dk, dv, scale);
            double c2 = CpuClock.Thread();
            if (i < 3) continue;
            fwd.Add(c1 - c0);
            bwd.Add(c2 - c1);
        }
        double macs = (double)batch * heads * seq * (seq + 1) / 2 * d;
        Console.WriteLine($"attention: B{batch} H{heads} T{seq} D{d}, {Environment.ProcessorCount} thread(s), median of {reps}, " +
                          $"CPU = the calling thread's CPU time; FMA peak {peak:F1} GFLOP/s per CPU-second of one thread");
        Console.WriteLine("| pass | CPU ms | causal GFLOP | GFLOP/s per CPU-s | % of peak |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        Row("forward", fwd, 2 * 2 * macs);
        Row("backward", bwd, 5 * 2 * macs);

        void Row(string name, List<double> times, double flops)
        {
            double median = times.Order().ElementAt(times.Count / 2);
            double rate = flops / median / 1e9;
            Console.WriteLine($"| {name} | {median * 1e3:F2} | {flops / 1e9:F3} | {rate:F1} | {rate / peak * 100:F0} % |");
        }
    }
}
