using System.Diagnostics;
using TensorLite.Autograd;
using TensorLite.Training;

namespace TensorLite.Perf;

/// <summary>
/// factored [b] [reps] [steps]: the factored-gradient issue's measurements, as Stopwatch medians.
///   1. dW cost per layer shape of llama_60m and llama_130m: the dense dW = dYᵀ·X against GRASS's selected rows
///      dY[:, rows]ᵀ·X (or columns dYᵀ·X[:, cols]) at r = 1/4 and 1/8 of the projected side, b rows.
///   2. training-step time, dense gradients (--factored-gradients off) against factored (on), per-layer updates, for
///      GRASS at r/m = 1/4 and 1/8 and GaLore (rsvd) and OSD at r = 1/4 of hidden, llama_60m and llama_130m shapes.
/// </summary>
public static class FactoredBench
{
    public static void Run(string[] args)
    {
        int b = args.Length > 1 ? int.Parse(args[1]) : 1024;
        int reps = args.Length > 2 ? int.Parse(args[2]) : 5;
        int steps = args.Length > 3 ? int.Parse(args[3]) : 4;
        Console.WriteLine($"factored gradients: b = {b}, {Environment.ProcessorCount} threads, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        GradientCost(b, reps);
        StepTime(steps);
    }

    private static double Median(int reps, Action work)
    {
        work(); // warm: packing buffers, pool blocks
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            var clock = Stopwatch.StartNew();
            work();
            times[i] = clock.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return times[reps / 2];
    }

    private static void GradientCost(int b, int reps)
    {
        Console.WriteLine("| model | weight [m, n] | side | dense dW (ms) | r = 1/4: factored rows (ms) | speed-up | r = 1/8 (ms) | speed-up |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        using var noGrad = GradMode.NoGrad();
        foreach (var (model, h, inter) in new[] { ("llama_60m", 512, 1376), ("llama_130m", 768, 2048) })
            foreach (var (m, n) in new[] { (h, h), (inter, h), (h, inter) })
            {
                var gen = new Generator(3);
                using var x = Tensor.RandN([b, n], gen, 1f);
                using var dy = Tensor.RandN([b, m], gen, 1f);
                bool left = m <= n; // the optimizer's side rule: rows when m ≤ n, else columns
                int dim = left ? m : n;
                double dense = Median(reps, () =>
                {
                    using var dyt = dy.T;
                    using var g = dyt.MatMul(x);
                });
                var row = $"| {model} | [{m}, {n}] | {(left ? "rows" : "columns")} | {dense:F2} |";
                foreach (int divisor in new[] { 4, 8 })
                {
                    int r = dim / divisor;
                    var picked = Enumerable.Range(0, r).Select(i => i * divisor).ToArray();
                    using var index = Tensor.FromSpan<int>(picked, [r], DType.Int32, Backend.Cpu);
                    var f = new FactoredGradient(m, n);
                    f.Add(x, dy);
                    double factored = Median(reps, () =>
                    {
                        using var rg = left ? f.SelectedRows(index) : f.SelectedColumns(index);
                    });
                    f.Dispose();
                    row += $" {factored:F2} | {dense / factored:F2}× |";
                }
                Console.WriteLine(row);
            }
    }

    private static void StepTime(int steps)
    {
        Console.WriteLine();
        Console.WriteLine($"| model | optimizer | rank | dense step (ms) | factored step (ms) | speed-up |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var root = Directory.CreateTempSubdirectory("tl-factored-bench-").FullName;
        try
        {
            foreach (var (model, h) in new[] { ("llama_60m", 512), ("llama_130m", 768) })
                foreach (var (optimizer, projection, rank) in new (string, string?, int)[]
                         { ("grass", "topnorm", h / 4), ("grass", "topnorm", h / 8), ("galore", "rsvd", h / 4), ("osd", null, h / 4) })
                {
                    var options = new TrainingOptions
                    {
                        Model = model, Seq = 256, Batch = 4, Steps = steps + 1, Warmup = 1, EvalEvery = 1000, EvalBatches = 1,
                        CheckpointEvery = 1000, LogEvery = 1, SyntheticBytes = 2_000_000, Optimizer = optimizer, Projection = projection,
                        Rank = rank, UpdateGap = 200, PerLayer = true,
                    };
                    double dense = StepMilliseconds(options with { FactoredGradients = false }, Path.Combine(root, $"{model}-{optimizer}-{rank}-d"));
                    double factored = StepMilliseconds(options with { FactoredGradients = true }, Path.Combine(root, $"{model}-{optimizer}-{rank}-f"));
                    Console.WriteLine($"| {model} | {optimizer}{(projection == null ? "" : " " + projection)} | {rank} | {dense:F0} | {factored:F0} | {dense / factored:F2}× |");
                }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>The median time between progress reports after the first step (which includes the projection refresh).</summary>
    private static double StepMilliseconds(TrainingOptions options, string dir)
    {
        var stamps = new List<TimeSpan>();
        var trainer = Trainer.Create(options, dir);
        trainer.Progress += p => stamps.Add(p.Elapsed);
        trainer.Run();
        var deltas = stamps.Zip(stamps.Skip(1), (a, c) => (c - a).TotalMilliseconds).Take(stamps.Count - 2).ToArray();
        Array.Sort(deltas);
        return deltas[deltas.Length / 2];
    }
}
