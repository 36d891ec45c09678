using System.Diagnostics;
using System.Runtime.InteropServices;
using TensorLite.Backends.Cpu;

namespace TensorLite.Perf;

/// <summary>Stopwatch timing of CpuGemm (quick iteration while tuning; BenchmarkDotNet is the reference).</summary>
public static unsafe class Quick
{
    public static void Run(string[] args)
    {
        int reps = int.TryParse(Environment.GetEnvironmentVariable("TL_QUICK_REPS"), out int rp) && rp > 0 ? rp : 7;
        if (int.TryParse(Environment.GetEnvironmentVariable("TL_THREADS"), out int th)) CpuGemm.MaxThreads = th;
        if (Environment.GetEnvironmentVariable("TL_PRIO") == "1")
        {
            // what BenchmarkDotNet does to its benchmark process
            Process.GetCurrentProcess().PriorityClass = ProcessPriorityClass.High;
            Thread.CurrentThread.Priority = ThreadPriority.Highest;
        }
        var shapes = Shapes.All;
        if (args.Length > 1 && args[1] == "llama")
            shapes = Shapes.Llama(args.Length > 2 ? int.Parse(args[2]) : 2048);
        else if (args.Length > 1)
            shapes = args.Skip(1).Select(Shapes.Parse).ToArray();
        var caches = CpuGemm.Caches;
        Console.WriteLine($"threads={CpuGemm.MaxThreads}  tile {CpuGemm.MR}x{CpuGemm.NR}  KC={CpuGemm.KC} MC={CpuGemm.MC} B block {CpuGemm.BBlockFloats / 1024} K floats"
            + $"  (L1D {caches.L1D >> 10} KiB, L2 {caches.L2 >> 10} KiB, L3 {caches.L3 >> 20} MiB)  (median of {reps} timed runs; GFLOP/s = 2mnk/t)");
        foreach (var s in shapes)
        {
            using var buf = new GemmBuffers(s);
            var times = new double[reps];
            var ratios = new double[reps];
            var cpuRatios = new double[reps];
            long iters = Math.Max(1, (long)(3e8 / ((double)s.M * s.N * s.K)));
            buf.Run(); buf.Run();
            for (int r = 0; r < reps; r++)
            {
                var sw = Stopwatch.StartNew();
                double c0 = CpuClock.Process();
                for (long i = 0; i < iters; i++) buf.Run();
                double cpu = (CpuClock.Process() - c0) / iters;
                times[r] = sw.Elapsed.TotalSeconds / iters;
                var peak = Peak.MeasureBoth(CpuGemm.MaxThreads, 1, 2_000_000);
                ratios[r] = s.Flops / times[r] / 1e9 / peak.Wall;
                // flops per CPU-second of the process (helpers' spinning included) against one core's peak rate
                cpuRatios[r] = s.Flops / cpu / 1e9 / peak.PerCpuSecond;
            }
            Array.Sort(ratios);
            Array.Sort(cpuRatios);
            Array.Sort(times);
            if (CpuGemm.Prof)
            {
                double tot = CpuGemm.ProfT.Take(4).Sum();
                Console.WriteLine($"  launches {CpuGemm.ProfT[5]} helper joins {CpuGemm.ProfT[4]} chunks helper {CpuGemm.ProfT[6]} caller {CpuGemm.ProfT[7]}");
                Console.WriteLine($"  packB {CpuGemm.ProfT[0] / tot:P1} barrier {CpuGemm.ProfT[1] / tot:P1} packA {CpuGemm.ProfT[2] / tot:P1} macro {CpuGemm.ProfT[3] / tot:P1}");
                Array.Clear(CpuGemm.ProfT);
            }
            double med = times[reps / 2];
            Console.WriteLine($"{s.Name,-14} {s,-18} median {med * 1e3,9:F3} ms  {s.Flops / med / 1e9,7:F1} GFLOP/s   (best {s.Flops / times[0] / 1e9,6:F1}, worst {s.Flops / times[^1] / 1e9,6:F1})  {ratios[reps / 2] * 100,5:F1}% of interleaved peak  {cpuRatios[reps / 2] * 100,5:F1}% per CPU-second");
        }
    }
}

/// <summary>A GEMM shape: C[m×n] = op(A)·op(B) with op(A) m×k.</summary>
public readonly record struct GemmShape(string Name, int M, int N, int K, bool TransA, bool TransB)
{
    /// <summary>Element type of B (float32, or bfloat16/float16: the mixed-precision path that widens B while packing).</summary>
    public DType BType { get; init; }
    public double Flops => 2.0 * M * N * K;
    /// <summary>"NN", "NT" (B transposed), "TN" (A transposed) or "TT".</summary>
    public string Op => $"{(TransA ? 'T' : 'N')}{(TransB ? 'T' : 'N')}";
    /// <summary>Short enough for BenchmarkDotNet's parameter column (it truncates past 20 characters).</summary>
    public override string ToString() => $"{M}x{N}x{K} {Op}{(BType == DType.Float32 ? "" : BType == DType.BFloat16 ? " Bbf16" : " Bf16")}";
}

public static class Shapes
{
    // LLaMA-60M-ish: hidden 512, intermediate 1376, 1024 token rows (seq 256 × batch 4).
    public static readonly GemmShape[] All =
    [
        new("cube", 256, 256, 256, false, false),
        new("cube", 1024, 1024, 1024, false, false),
        new("tall", 4096, 1024, 1024, false, false),
        new("attn-proj fwd", 1024, 512, 512, false, true),
        new("attn-proj dX", 1024, 512, 512, false, false),
        new("attn-proj dW", 512, 512, 1024, true, false),
        new("mlp-up fwd", 1024, 1376, 512, false, true),
        new("mlp-up dX", 1024, 512, 1376, false, false),
        new("mlp-up dW", 1376, 512, 1024, true, false),
        new("mlp-down fwd", 1024, 512, 1376, false, true),
        new("mlp-down dX", 1024, 1376, 512, false, false),
        new("mlp-down dW", 512, 1376, 1024, true, false),
    ];

    /// <summary>
    /// The linear-layer GEMMs of llama_20m … llama_1b (LlamaConfig presets) for <paramref name="rows"/> token rows
    /// (batch·seq): per weight W (out×in) the forward x·Wᵀ (NT), dX = dY·W (NN) and dW = dYᵀ·x (TN), for the
    /// attention projections (hidden×hidden), the MLP up/gate (intermediate×hidden) and down (hidden×intermediate)
    /// weights; the 32000-row LM head only for llama_20m (the larger heads take seconds per call); then 1024³.
    /// </summary>
    public static GemmShape[] Llama(int rows)
    {
        var list = new List<GemmShape>();
        foreach (var (model, h, inter) in new[] { ("20m", 256, 688), ("60m", 512, 1376), ("130m", 768, 2048), ("350m", 1024, 2736), ("1b", 2048, 5461) })
        {
            var weights = new List<(string, int, int)> { ("attn", h, h), ("up", inter, h), ("down", h, inter) };
            if (model == "20m") weights.Add(("head", 32000, h));
            foreach (var (name, outF, inF) in weights)
            {
                list.Add(new($"{model} {name} fwd", rows, outF, inF, false, true));
                list.Add(new($"{model} {name} dX", rows, inF, outF, false, false));
                list.Add(new($"{model} {name} dW", outF, inF, rows, true, false));
            }
        }
        list.Add(new("cube", 1024, 1024, 1024, false, false));
        return list.ToArray();
    }

    /// <summary>Parses "MxNxK" with an optional ":ab[c]" suffix (t = transposed, n = not; a third letter b or h
    /// stores B as bfloat16 or float16), e.g. 512x512x1024:tn or 1024x11008x4096:ntb (x·Wᵀ with a bf16 weight).</summary>
    public static GemmShape Parse(string s)
    {
        var parts = s.Split(':');
        var d = parts[0].Split('x').Select(int.Parse).ToArray();
        bool ta = parts.Length > 1 && parts[1].Length > 0 && parts[1][0] == 't';
        bool tb = parts.Length > 1 && parts[1].Length > 1 && parts[1][1] == 't';
        char bt = parts.Length > 1 && parts[1].Length > 2 ? parts[1][2] : 'f';
        return new GemmShape("custom", d[0], d[1], d[2], ta, tb)
        {
            BType = bt == 'b' ? DType.BFloat16 : bt == 'h' ? DType.Float16 : DType.Float32,
        };
    }
}

/// <summary>Native, 64-byte-aligned operands for one shape, filled with small random values.</summary>
public sealed unsafe class GemmBuffers : IDisposable
{
    public readonly GemmShape Shape;
    public readonly float* A, B, C;
    /// <summary>B as 16-bit values when the shape's B type is bfloat16/float16 (null otherwise).</summary>
    public readonly ushort* BHalf;

    public GemmBuffers(GemmShape s)
    {
        Shape = s;
        A = Alloc((long)s.M * s.K);
        B = Alloc((long)s.K * s.N);
        C = Alloc((long)s.M * s.N);
        var rng = new Random(42);
        for (long i = 0; i < (long)s.M * s.K; i++) A[i] = (float)(rng.NextDouble() - 0.5);
        for (long i = 0; i < (long)s.K * s.N; i++) B[i] = (float)(rng.NextDouble() - 0.5);
        if (s.BType != DType.Float32)
        {
            BHalf = (ushort*)NativeMemory.AlignedAlloc((nuint)((long)s.K * s.N * 2), 64);
            for (long i = 0; i < (long)s.K * s.N; i++)
                BHalf[i] = s.BType == DType.BFloat16 ? HalfPrecision.FloatToBFloat16(B[i]) : HalfPrecision.FloatToFloat16(B[i]);
        }
        new Span<float>(C, s.M * s.N).Clear();
    }

    static float* Alloc(long n) => (float*)NativeMemory.AlignedAlloc((nuint)(n * 4), 64);

    /// <summary>Extra leading-dimension padding for A (TL_PADA, experiments only; buffers are sized for it).</summary>
    static readonly int PadA = int.TryParse(Environment.GetEnvironmentVariable("TL_PADA"), out int p) ? p : 0;

    public void Run()
    {
        var s = Shape;
        int lda = s.TransA ? s.M : s.K;
        if (BHalf != null)
        {
            CpuGemm.Gemm(s.TransA, s.TransB, s.M, s.N, s.K, 1f, A, DType.Float32, lda, BHalf, s.BType, s.TransB ? s.K : s.N, 0f, C, s.N);
            return;
        }
        // with padding, view A as fewer logical rows of the same storage (values do not matter for timing)
        CpuGemm.Sgemm(s.TransA, s.TransB, PadA == 0 ? s.M : s.M - 16, s.N, s.K, 1f,
            A, lda + PadA, B, s.TransB ? s.K : s.N, 0f, C, s.N);
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(A);
        NativeMemory.AlignedFree(B);
        NativeMemory.AlignedFree(C);
        if (BHalf != null) NativeMemory.AlignedFree(BHalf);
    }
}

public static unsafe class KernelProbe
{
    /// <summary>Micro-kernel alone on L1/L2-resident packed panels: the ceiling for the blocked driver.</summary>
    public static void Run(string[] args)
    {
        int kc = args.Length > 1 ? int.Parse(args[1]) : CpuGemm.KC;
        int panels = args.Length > 2 ? int.Parse(args[2]) : 1; // A panels swept per B panel (L2 residency)
        int mr = CpuGemm.MR, nr = CpuGemm.NR;
        float* a = (float*)NativeMemory.AlignedAlloc((nuint)(mr * kc * panels * 4), 64);
        float* b = (float*)NativeMemory.AlignedAlloc((nuint)(nr * kc * 4), 64);
        float* c = (float*)NativeMemory.AlignedAlloc((nuint)(mr * nr * panels * 4), 64);
        for (int i = 0; i < mr * kc * panels; i++) a[i] = 0.001f * (i % 7);
        for (int i = 0; i < nr * kc; i++) b[i] = 0.001f * (i % 5);
        long calls = (long)(4e9 / (2.0 * mr * nr * kc));
        for (int rep = 0; rep < 5; rep++)
        {
            var sw = Stopwatch.StartNew();
            double c0 = CpuClock.Thread();
            for (long i = 0; i < calls; i += panels)
                for (int p = 0; p < panels; p++)
                    CpuGemm.Kernel(kc, a + (long)p * mr * kc, b, c + p * mr * nr, nr, 1f, 1f, true);
            double cpu = CpuClock.Thread() - c0;
            double t = sw.Elapsed.TotalSeconds;
            double gflop = 2.0 * mr * nr * kc * calls / 1e9;
            var peak = Peak.MeasureBoth(1, 3);
            Console.WriteLine($"kernel {mr}x{nr} kc={kc} panels={panels}: {gflop / t:F1} GFLOP/s (peak now {peak.Wall:F1}); "
                + $"per CPU-second {gflop / cpu:F1} = {gflop / cpu / peak.PerCpuSecond * 100:F1}% of the peak loop's");
        }
    }
}

public static unsafe class PackProbe
{
    public static void Run()
    {
        foreach (int ld in new[] { 1024, 1040 })
        foreach (bool ta in new[] { false, true })
        {
            int m = 1024, k = 1024;
            float* a = (float*)NativeMemory.AlignedAlloc((nuint)(ld * 1024 * 4), 64);
            float* dst = (float*)NativeMemory.AlignedAlloc((nuint)(CpuGemm.ABufferFloats(CpuGemm.MC) * 4 + 4096), 64);
            float* junk = (float*)NativeMemory.AlignedAlloc(64 << 20, 64);
            for (long i = 0; i < ld * 1024L; i++) a[i] = i;
            var hot = new List<double>(); var cold = new List<double>();
            for (int r = 0; r < 7; r++)
            {
                hot.Add(CpuGemm.ProbePackA(ta, m, k, a, ld, dst));
                new Span<float>(junk, 16 << 20).Fill(r); // evict
                cold.Add(CpuGemm.ProbePackA(ta, m, k, a, ld, dst));
            }
            hot.Sort(); cold.Sort();
            Console.WriteLine($"PackA ta={ta} lda={ld}: hot {hot[3] * 1e3:F3} ms ({4.0 * m * k / hot[3] / 1e9:F1} GB/s)  cold {cold[3] * 1e3:F3} ms ({4.0 * m * k / cold[3] / 1e9:F1} GB/s)");
            float* dstB = (float*)NativeMemory.AlignedAlloc((nuint)(1024 * 1024 * 4), 64);
            hot.Clear(); cold.Clear();
            for (int r = 0; r < 7; r++)
            {
                hot.Add(CpuGemm.ProbePackB(ta, 1024, 1024, a, ld, dstB));
                new Span<float>(junk, 16 << 20).Fill(r);
                cold.Add(CpuGemm.ProbePackB(ta, 1024, 1024, a, ld, dstB));
            }
            hot.Sort(); cold.Sort();
            Console.WriteLine($"PackB tb={ta} ldb={ld}: hot {hot[3] * 1e3:F3} ms ({4.0 * m * k / hot[3] / 1e9:F1} GB/s)  cold {cold[3] * 1e3:F3} ms ({4.0 * m * k / cold[3] / 1e9:F1} GB/s)");
            NativeMemory.AlignedFree(dstB);
            NativeMemory.AlignedFree(a); NativeMemory.AlignedFree(dst); NativeMemory.AlignedFree(junk);
        }
    }
}
