using System.Diagnostics;
using TensorLite.Backends.Cpu;
#if TORCH_PEER
using TorchSharp;
using static TorchSharp.torch;
#endif

namespace TensorLite.Perf;

/// <summary>
/// TensorLite CpuGemm vs libtorch (TorchSharp-cpu) on the same shapes and data, 2 threads each,
/// runs interleaved (TL, torch, TL, torch, …) so both sides see the same machine noise.
/// </summary>
public static unsafe class Compare
{
    public static void Run(string[] args)
    {
#if TORCH_PEER
        int threads = 2;
        int reps = args.Length > 1 && int.TryParse(args[1], out int r) ? r : 9;
        CpuGemm.MaxThreads = threads;
        torch.set_num_threads(threads);
        Console.WriteLine($"TensorLite CpuGemm vs libtorch {torch.__version__} (TorchSharp-cpu), {threads} threads each; " +
                          $"torch.get_num_threads()={torch.get_num_threads()}; median of {reps} interleaved samples");
        double peakBefore = Peak.Measure(threads, 5);
        Console.WriteLine($"FMA peak (2 threads) before: {peakBefore:F1} GFLOP/s");
        Console.WriteLine();
        Console.WriteLine("| shape | m×n×k | TensorLite ms | TensorLite GFLOP/s | libtorch ms | libtorch GFLOP/s | TL/torch | max rel diff |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var s in Shapes.All)
        {
            using var buf = new GemmBuffers(s);
            int aRows = s.TransA ? s.K : s.M, aCols = s.TransA ? s.M : s.K;
            int bRows = s.TransB ? s.N : s.K, bCols = s.TransB ? s.K : s.N;
            using var ta = torch.tensor(new ReadOnlySpan<float>(buf.A, aRows * aCols).ToArray(), new long[] { aRows, aCols });
            using var tb = torch.tensor(new ReadOnlySpan<float>(buf.B, bRows * bCols).ToArray(), new long[] { bRows, bCols });
            using var opA = s.TransA ? ta.t() : ta.alias();
            using var opB = s.TransB ? tb.t() : tb.alias();
            using var tc = torch.zeros(s.M, s.N);
            void Torch() => tc.addmm_(opA, opB, beta: 0f, alpha: 1f);

            long iters = Math.Max(1, (long)(2e8 / ((double)s.M * s.N * s.K)));
            for (int w = 0; w < 3; w++) { buf.Run(); Torch(); }
            var tl = new double[reps];
            var th = new double[reps];
            for (int i = 0; i < reps; i++)
            {
                var sw = Stopwatch.StartNew();
                for (long it = 0; it < iters; it++) buf.Run();
                tl[i] = sw.Elapsed.TotalSeconds / iters;
                sw.Restart();
                for (long it = 0; it < iters; it++) Torch();
                th[i] = sw.Elapsed.TotalSeconds / iters;
            }
            Array.Sort(tl);
            Array.Sort(th);
            double tMed = tl[reps / 2], hMed = th[reps / 2];
            var torchC = tc.data<float>().ToArray();
            double maxRel = 0, scale = 0;
            for (int i = 0; i < torchC.Length; i++) scale = Math.Max(scale, Math.Abs(torchC[i]));
            for (int i = 0; i < torchC.Length; i++) maxRel = Math.Max(maxRel, Math.Abs(buf.C[i] - torchC[i]) / scale);
            Console.WriteLine($"| {s.Name}{(s.TransA ? " (Aᵀ)" : "")}{(s.TransB ? " (Bᵀ)" : "")} | {s.M}×{s.N}×{s.K} | {tMed * 1e3:F3} | {s.Flops / tMed / 1e9:F1} | " +
                              $"{hMed * 1e3:F3} | {s.Flops / hMed / 1e9:F1} | {hMed / tMed:F2}× | {maxRel:E1} |");
        }
        Console.WriteLine();
        Console.WriteLine($"FMA peak (2 threads) after: {Peak.Measure(threads, 5):F1} GFLOP/s");
#else
        Console.WriteLine("compare needs the libtorch peer; build with -p:Peer=torch inside the trixie chroot:");
        Console.WriteLine("  ../shared/peer/in-trixie.sh dotnet run -c Release --project perf/TensorLite.Perf -p:Peer=torch -- compare");
#endif
    }
}
