using System.Diagnostics;
using TensorLite.Autograd;
using TensorLite.LinearAlgebra;
using TensorLite.Models;
using TensorLite.Optim;
using TensorLite.Optim.Projected;

namespace TensorLite.Perf;

/// <summary>
/// The projected-optimizer issue's benchmarks, as Stopwatch runs (each case is seconds to minutes long,
/// so BenchmarkDotNet's repeated iterations do not fit):
///   svd [m] [n] [ranks]   randomized vs exact SVD of an m×n matrix with a decaying spectrum: time and
///                          error ‖A − U·S·Vt‖_F relative to the optimal rank-r error from the exact SVD.
///   rsvd [m] [n] [rank] [p] [q]   only the randomized SVD and its QRs at GaLore sizes (no exact SVD).
///   galore-overhead [model] [batch] [seq] [gap]   training-step time with GaLore vs dense AdamW, with the
///                          projection refresh (randomized and exact SVD) amortized over the refresh gap.
/// </summary>
public static class ProjectionBench
{
    public static void Svd(string[] args)
    {
        int m = args.Length > 1 ? int.Parse(args[1]) : 4096, n = args.Length > 2 ? int.Parse(args[2]) : 11008;
        int[] ranks = args.Length > 3 ? args[3].Split(',').Select(int.Parse).ToArray() : [128, 512, 1024];
        using var noGrad = GradMode.NoGrad();
        var gen = new Generator(7);
        // A = G1·G2 (Gaussian factors, inner size m): singular values spread over orders of magnitude, like a
        // gradient's, unlike the flat spectrum of a single Gaussian matrix.
        using var g1 = Tensor.RandN([m, m], gen, 1f / MathF.Sqrt(m));
        using var g2 = Tensor.RandN([m, n], gen, 1f / MathF.Sqrt(m));
        using var a = g1.MatMul(g2);
        Console.WriteLine($"A: {m}×{n}, {Environment.ProcessorCount} threads, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        var clock = Stopwatch.StartNew();
        var (_, sFull, _) = Linalg.Svd(a);
        double exactSeconds = clock.Elapsed.TotalSeconds;
        var sigma = sFull.ToArray().Select(x => (double)x).ToArray();
        Console.WriteLine($"exact SVD (all {sigma.Length} singular values): {exactSeconds:F1} s; σ_1 {sigma[0]:G4}, " +
            string.Join(", ", ranks.Where(r => r <= sigma.Length).Select(r => $"σ_{r} {sigma[r - 1]:G4}")) + $", σ_min {sigma[^1]:G4}");
        double normA = Math.Sqrt(sigma.Sum(x => x * x));
        Console.WriteLine("| rank | rSVD time (s) | exact SVD time (s) | speed-up | rSVD error / optimal error |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (int r in ranks)
        {
            double optimal = Math.Sqrt(sigma.Skip(r).Sum(x => x * x));
            clock.Restart();
            var (u, s, vt) = Linalg.RandomizedSvd(a, r, new Generator(11));
            double seconds = clock.Elapsed.TotalSeconds;
            using var us = u * s.Unsqueeze(0);
            using var approx = us.MatMul(vt);
            using var diff = a - approx;
            using var sq = diff.Square();
            double error = Math.Sqrt(sq.Sum().Item());
            Console.WriteLine($"| {r} | {seconds:F2} | {exactSeconds:F1} | {exactSeconds / seconds:F0}× | {error / optimal:F4} (optimal {optimal / normA:P1} of ‖A‖) |");
            u.Dispose(); s.Dispose(); vt.Dispose();
        }
    }

    /// <summary>
    /// rsvd [m] [n] [rank] [oversampling] [q]: times only the parts of a GaLore-size randomized SVD (no exact SVD):
    /// Orthonormalize of Gaussian [m, ℓ] and [n, ℓ] matrices (ℓ = rank + oversampling) and of an ill-conditioned
    /// sketch Y = A·Ω, then RandomizedSvd itself, with the orthonormality of Q and U and ‖A − U·S·Vt‖_F/‖A‖.
    /// </summary>
    public static void RandomizedOnly(string[] args)
    {
        int m = args.Length > 1 ? int.Parse(args[1]) : 4096, n = args.Length > 2 ? int.Parse(args[2]) : 11008;
        int rank = args.Length > 3 ? int.Parse(args[3]) : 1024, p = args.Length > 4 ? int.Parse(args[4]) : 10;
        int q = args.Length > 5 ? int.Parse(args[5]) : 2;
        int l = rank + p;
        using var noGrad = GradMode.NoGrad();
        var gen = new Generator(7);
        Console.WriteLine($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} threads; A {m}×{n}, rank {rank}, ℓ = {l}, q = {q}");
        using var g1 = Tensor.RandN([m, m], gen, 1f / MathF.Sqrt(m));
        using var g2 = Tensor.RandN([m, n], gen, 1f / MathF.Sqrt(m));
        using var a = g1.MatMul(g2);
        var clock = Stopwatch.StartNew();
        foreach (int rows in new[] { m, n })
        {
            using var x = Tensor.RandN([rows, l], gen, 1f);
            clock.Restart();
            using var qx = Linalg.Orthonormalize(x);
            double seconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine($"Orthonormalize Gaussian {rows}×{l}: {seconds:F2} s, max|QᵀQ − I| {Orthonormality(qx):E2}");
        }
        using (var omega = Tensor.RandN([n, l], gen, 1f))
        using (var y = a.MatMul(omega))
        {
            clock.Restart();
            using var qy = Linalg.Orthonormalize(y);
            double seconds = clock.Elapsed.TotalSeconds;
            using var qt = qy.T;
            using var proj = qt.MatMul(y);
            using var back = qy.MatMul(proj);
            using var diff = y - back;
            double rel = Math.Sqrt(diff.Square().Sum().Item() / y.Square().Sum().Item());
            Console.WriteLine($"Orthonormalize sketch A·Ω {m}×{l}: {seconds:F2} s, max|QᵀQ − I| {Orthonormality(qy):E2}, ‖Y − QQᵀY‖/‖Y‖ {rel:E2}");
            // The small exact SVD inside RandomizedSvd works on an ℓ×ℓ triangular factor like this one.
            var (_, ry) = Linalg.Qr(y);
            using (ry)
            using (var ryt = ry.T)
            {
                clock.Restart();
                var (uy, ss, vts) = Linalg.Svd(ryt);
                Console.WriteLine($"Svd of the {l}×{l} factor Rᵀ: {clock.Elapsed.TotalSeconds:F2} s");
                uy.Dispose(); ss.Dispose(); vts.Dispose();
            }
        }
        clock.Restart();
        var (u, s, vt) = Linalg.RandomizedSvd(a, rank, new Generator(11), p, q);
        double rsvd = clock.Elapsed.TotalSeconds;
        using var us = u * s.Unsqueeze(0);
        using var approx = us.MatMul(vt);
        using var d = a - approx;
        double err = Math.Sqrt(d.Square().Sum().Item() / a.Square().Sum().Item());
        Console.WriteLine($"RandomizedSvd: {rsvd:F2} s, ‖A − USVt‖/‖A‖ {err:E3}, max|UᵀU − I| {Orthonormality(u):E2}, σ_1 {s.ToArray()[0]:G5}, σ_{rank} {s.ToArray()[^1]:G5}");
        u.Dispose(); s.Dispose(); vt.Dispose();
    }

    private static double Orthonormality(Tensor q)
    {
        using var qt = q.T;
        using var g = qt.MatMul(q);
        var h = g.ToArray();
        int k = q.Shape[1];
        double worst = 0;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) worst = Math.Max(worst, Math.Abs(h[i * k + j] - (i == j ? 1 : 0)));
        return worst;
    }

    public static void GaLoreOverhead(string[] args)
    {
        string model = args.Length > 1 ? args[1] : "llama_20m";
        int batch = args.Length > 2 ? int.Parse(args[2]) : 4, seq = args.Length > 3 ? int.Parse(args[3]) : 256;
        int gap = args.Length > 4 ? int.Parse(args[4]) : 200;
        int timed = args.Length > 5 ? int.Parse(args[5]) : 8;
        var config = LlamaConfig.FromName(model);
        var gen = new Generator(3);
        var ids = Tensor.FromArray(Enumerable.Range(0, batch * seq).Select(_ => gen.NextInt(config.VocabSize)).ToArray(), batch, seq).Persist();
        var targets = Tensor.FromArray(Enumerable.Range(0, batch * seq).Select(_ => gen.NextInt(config.VocabSize)).ToArray(), batch, seq).Persist();
        Console.WriteLine($"{model} batch {batch} × seq {seq}, refresh gap {gap}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        var results = new List<(string Name, double Step, double Refresh)>();
        foreach (var (name, make) in new (string, Func<LlamaModel, Optimizer>)[]
        {
            ("AdamW", m => new AdamW(m.Parameters(), 1e-3f, weightDecay: 0.1f)),
            ("GaLore rank 128 (rSVD)", m => new ProjectedOptimizer(m.NamedParameters(), ProjectedOptions.GaLore(128, gap, 0.25f, randomizedSvd: true, 1e-3f, 0.1f))),
            ("GaLore rank 128 (exact SVD)", m => new ProjectedOptimizer(m.NamedParameters(), ProjectedOptions.GaLore(128, gap, 0.25f, randomizedSvd: false, 1e-3f, 0.1f))),
        })
        for (int pass = 0; pass < 2; pass++) // the first pass only warms up the JIT for this optimizer
        {
            var lm = new LlamaModel(config, new Generator(1));
            var opt = make(lm);
            var times = new List<double>();
            for (int step = 0; step < (pass == 0 ? 2 : timed + 1); step++)
            {
                var clock = Stopwatch.StartNew();
                using (var scope = TensorScope.Enter())
                {
                    lm.Loss(ids, targets).Backward();
                    opt.Step();
                    opt.ZeroGrad();
                }
                times.Add(clock.Elapsed.TotalSeconds);
            }
            if (pass == 0) continue;
            // Step 0 includes the first projection (the refresh); later steps reuse it.
            var later = times.Skip(1).OrderBy(t => t).ToArray();
            double step1 = later[later.Length / 2]; // median
            results.Add((name, step1, Math.Max(0, times[0] - step1)));
            Console.WriteLine($"{name}: steps {string.Join(", ", times.Select(t => t.ToString("F2")))} s");
        }
        double baseline = results[0].Step;
        Console.WriteLine("| optimizer | step (s) | refresh (s) | amortized step at gap " + gap + " (s) | overhead vs AdamW |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (name, step, refresh) in results)
        {
            double amortized = step + refresh / gap;
            Console.WriteLine($"| {name} | {step:F3} | {refresh:F2} | {amortized:F3} | {(amortized / baseline - 1):P1} |");
        }
    }
}
