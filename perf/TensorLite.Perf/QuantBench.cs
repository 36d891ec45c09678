using System.Diagnostics;
using TensorLite.Backends.Cpu;
using TensorLite.Optim.Projected;
using TensorLite.Numerics;

namespace TensorLite.Perf;

/// <summary>
/// q8 [sizes] [reps]: Stopwatch medians of the CPU optimizer-state kernels on the same data: fp32 AdamDirection,
/// AdamDirection8bit (fused dequantize, update, direction, requantize), BlockwiseQuantize and BlockwiseDequantize
/// (signed map). Sizes are element counts (default 4M and 45M = one [4096, 11008] LLaMA-7B MLP weight).
/// </summary>
public static class QuantBench
{
    public static void Run(string[] args)
    {
        var sizes = args.Length > 1 ? args[1].Split(',').Select(int.Parse).ToArray() : [4 << 20, 4096 * 11008];
        int reps = args.Length > 2 ? int.Parse(args[2]) : 7;
        var be = CpuBackend.Instance;
        Console.WriteLine($"threads {CpuParallel.Threads}, Vector512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}, reps {reps} (median ms)");
        foreach (int n in sizes)
        {
            var host = new float[n];
            var gen = new Generator(7);
            gen.FillNormal(host, 0f, 1f);
            for (int i = 0; i < n; i++) host[i] *= MathF.Pow(10f, -3f * ((i * 2654435761u) % 1000) / 1000f);
            int blocks = BlockwiseQuantizer.BlockCount(n);
            using var g = Tensor.FromArray(host, n);
            using var m = Tensor.Zeros([n]);
            using var v = Tensor.Zeros([n]);
            using var d = Tensor.Empty([n], DType.Float32);
            using var mc = Tensor.Empty([n], DType.UInt8);
            using var vc = Tensor.Empty([n], DType.UInt8);
            using var ma = Tensor.Empty([blocks], DType.Float32);
            using var va = Tensor.Empty([blocks], DType.Float32);
            using var back = Tensor.Empty([n], DType.Float32);
            var h = new AdamWStepParams(1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1f - 0.9f * 0.9f, 1f - 0.999f * 0.999f);
            be.BlockwiseQuantize(m, mc, ma, true);
            be.BlockwiseQuantize(v, vc, va, false);
            double fp32 = Time(reps, () => be.AdamDirection(g, m, v, d, h));
            double q8 = Time(reps, () => be.AdamDirection8bit(g, mc, ma, vc, va, d, h));
            double quant = Time(reps, () => be.BlockwiseQuantize(g, mc, ma, true));
            double dequant = Time(reps, () => be.BlockwiseDequantize(mc, ma, back, true));
            Console.WriteLine($"n = {n,10:N0}: fp32 AdamDirection {fp32,8:F2} ms | AdamDirection8bit {q8,8:F2} ms ({q8 / fp32:F2}× fp32) | " +
                              $"quantize {quant,8:F2} ms | dequantize {dequant,8:F2} ms");
        }
    }

    private static double Time(int reps, Action a)
    {
        // Warm up past tiered compilation (tier-0 and OSR code of the block loops is several times slower).
        long w = Stopwatch.GetTimestamp();
        for (int k = 0; k < 5 || Stopwatch.GetElapsedTime(w).TotalMilliseconds < 500; k++) a();
        var t = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            long s = Stopwatch.GetTimestamp();
            a();
            t[r] = Stopwatch.GetElapsedTime(s).TotalMilliseconds;
        }
        Array.Sort(t);
        return t[reps / 2];
    }
}
