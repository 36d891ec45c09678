using TensorLite.Autograd;
using TensorLite.Backends.Cpu;
using TensorLite.Ilgpu;
using TensorLite.LinearAlgebra;
using TensorLite.Optim.Projected;
using Xunit;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Tests;

/// <summary>The ILGPU Householder QR and one-sided Jacobi SVD against the CPU backend, on ILGPU's CPU accelerator:
/// tall, wide and square shapes, a single column or row, rank-deficient and zero matrices, truncated SVDs; then the
/// public linear-algebra ops built on them (randomized SVD, range finder, online PCA) and one step of the projected
/// optimizers with ILGPU tensors. Singular vectors are compared up to sign (neither backend fixes one).</summary>
public sealed class IlgpuLinalgTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>
{
    private readonly IlgpuBackend _gpu = fixture.Backend;
    private static readonly IBackend Cpu = CpuBackend.Instance;

    private static float[] Gaussian(int count, int seed)
    {
        var rng = new Random(seed);
        var d = new float[count];
        for (int i = 0; i < count; i++)
            d[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        return d;
    }

    /// <summary>A row-major m×n matrix of rank ≤ <paramref name="rank"/> (a product of Gaussian factors); rank 0 is
    /// the zero matrix.</summary>
    private static float[] Matrix(int m, int n, int seed, int? rank = null)
    {
        if (rank is not { } r) return Gaussian(m * n, seed);
        var result = new float[m * n];
        if (r == 0) return result;
        var b = Gaussian(m * r, seed);
        var c = Gaussian(r * n, seed + 1);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int t = 0; t < r; t++) sum += (double)b[i * r + t] * c[t * n + j];
                result[i * n + j] = (float)sum;
            }
        return result;
    }

    private static Tensor Make(IBackend be, float[] data, params int[] shape) => Tensor.FromSpan<float>(data, shape, DType.Float32, be);

    private static double FrobeniusNorm(float[] a) => Math.Sqrt(a.Sum(x => (double)x * x));

    /// <summary>x [rows, cols]ᵀ·x [rows, cols] in double.</summary>
    private static double[,] Gram(float[] x, int rows, int cols, bool ofRows = false)
    {
        // ofRows: the Gram matrix of the rows (x·xᵀ), for vt.
        int count = ofRows ? rows : cols, len = ofRows ? cols : rows;
        var g = new double[count, count];
        for (int p = 0; p < count; p++)
            for (int q = 0; q < count; q++)
            {
                double sum = 0;
                for (int i = 0; i < len; i++)
                    sum += ofRows ? (double)x[p * cols + i] * x[q * cols + i] : (double)x[i * cols + p] * x[i * cols + q];
                g[p, q] = sum;
            }
        return g;
    }

    private static void AssertOrthonormal(float[] x, int rows, int cols, bool ofRows, string what, double tol = 1e-5)
    {
        var g = Gram(x, rows, cols, ofRows);
        for (int p = 0; p < g.GetLength(0); p++)
            for (int q = 0; q < g.GetLength(1); q++)
                Assert.True(Math.Abs(g[p, q] - (p == q ? 1 : 0)) <= tol, $"{what}: Gram[{p}, {q}] = {g[p, q]}");
    }

    /// <summary>u [m, k]·diag(s)·vt [k, n] in double.</summary>
    private static double[] Compose(float[] u, float[] s, float[] vt, int m, int n)
    {
        int k = s.Length;
        var result = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int c = 0; c < k; c++) sum += (double)u[i * k + c] * s[c] * vt[c * n + j];
                result[i * n + j] = sum;
            }
        return result;
    }

    private static void AssertClose(IReadOnlyList<double> expected, IReadOnlyList<double> actual, double tol, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol, $"{what}[{i}]: expected {expected[i]}, got {actual[i]} (tol {tol})");
    }

    private static double[] Wide(float[] x) => x.Select(v => (double)v).ToArray();

    // ---- QR -------------------------------------------------------------------------------------

    private (float[] Q, float[] R) Qr(IBackend be, float[] a, int m, int n)
    {
        using var at = Make(be, a, m, n);
        var (q, r) = LA.Qr(at);
        using (q)
        using (r)
            return (q.ToArray(), r.ToArray());
    }

    /// <summary>QR's contract on one result: orthonormal Q, upper triangular R with diag ≥ 0, A = Q·R.</summary>
    private static void AssertQrContract(float[] a, float[] q, float[] r, int m, int n)
    {
        AssertOrthonormal(q, m, n, ofRows: false, "QᵀQ");
        double scale = Math.Max(1, FrobeniusNorm(a));
        for (int i = 0; i < n; i++)
        {
            Assert.True(r[i * n + i] >= 0, $"R[{i}, {i}] = {r[i * n + i]} < 0");
            for (int j = 0; j < i; j++) Assert.Equal(0f, r[i * n + j]);
        }
        var qr = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                for (int t = 0; t < n; t++) qr[i * n + j] += (double)q[i * n + t] * r[t * n + j];
        AssertClose(Wide(a), qr, 1e-5 * scale, "Q·R");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 1)]       // one column
    [InlineData(7, 3)]
    [InlineData(13, 13)]     // square, odd
    [InlineData(40, 23)]
    [InlineData(64, 64)]
    [InlineData(70, 5)]      // columns longer than CUDA's group (64)
    public void Qr_MatchesCpu(int m, int n)
    {
        var a = Matrix(m, n, 11 * m + n);
        var (qc, rc) = Qr(Cpu, a, m, n);
        var (qg, rg) = Qr(_gpu, a, m, n);
        AssertQrContract(a, qg, rg, m, n);
        // With diag(R) > 0 the thin QR of a full-rank matrix is unique, so the factors match the CPU's elementwise.
        double scale = Math.Max(1, FrobeniusNorm(a));
        AssertClose(Wide(qc), Wide(qg), 1e-4, "Q");
        AssertClose(Wide(rc), Wide(rg), 1e-5 * scale, "R");
    }

    [Theory]
    [InlineData(12, 6, 3)]
    [InlineData(9, 9, 1)]
    [InlineData(5, 3, 0)]    // the zero matrix: every reflector is the identity, R = 0
    public void Qr_RankDeficient_KeepsTheContract(int m, int n, int rank)
    {
        var a = Matrix(m, n, 3 * m + n, rank);
        var (qc, _) = Qr(Cpu, a, m, n);
        var (qg, rg) = Qr(_gpu, a, m, n);
        AssertQrContract(a, qg, rg, m, n);
        // The first `rank` columns of A are independent, so Q's first `rank` columns are still determined.
        for (int i = 0; i < m; i++)
            for (int c = 0; c < rank; c++)
                Assert.True(Math.Abs(qc[i * n + c] - qg[i * n + c]) <= 1e-4, $"Q[{i}, {c}]: {qc[i * n + c]} vs {qg[i * n + c]}");
    }

    [Fact]
    public void Qr_OfATransposedView_MatchesCpu()
    {
        // The op makes a strided input contiguous before the kernel; the factors must be those of the view.
        var a = Matrix(6, 11, 5);
        (float[] Q, float[] R) Run(IBackend be)
        {
            using var t = Make(be, a, 6, 11);
            using var view = t.T;
            var (q, r) = LA.Qr(view);
            using (q)
            using (r)
                return (q.ToArray(), r.ToArray());
        }
        var c = Run(Cpu);
        var g = Run(_gpu);
        AssertClose(Wide(c.Q), Wide(g.Q), 1e-4, "Q");
        AssertClose(Wide(c.R), Wide(g.R), 1e-4, "R");
    }

    [Fact]
    public void QrAndSvd_OfARowWindow_ReadFromTheViewsOffset()
    {
        // Rows 3..12 of a larger matrix are a contiguous view that starts at an offset into its storage: the op passes it
        // through as is, so the kernels must read from the offset.
        var a = Matrix(15, 4, 41);
        (float[] Q, float[] S) Run(IBackend be)
        {
            using var t = Make(be, a, 15, 4);
            using var window = t.Narrow(0, 3, 10);
            var (q, r) = LA.Qr(window);
            var (u, s, vt) = LA.Svd(window);
            using (q) using (r) using (u) using (s) using (vt)
                return (q.ToArray(), s.ToArray());
        }
        var c = Run(Cpu);
        var g = Run(_gpu);
        AssertClose(Wide(c.Q), Wide(g.Q), 1e-4, "Q");
        AssertClose(Wide(c.S), Wide(g.S), 1e-4, "S");
    }

    // ---- SVD ------------------------------------------------------------------------------------

    private (float[] U, float[] S, float[] Vt) Svd(IBackend be, float[] a, int m, int n, int? k)
    {
        using var at = Make(be, a, m, n);
        var (u, s, vt) = LA.Svd(at, k);
        using (u)
        using (s)
        using (vt)
            return (u.ToArray(), s.ToArray(), vt.ToArray());
    }

    /// <summary>The SVD's contract on the ILGPU result, and agreement with the CPU's: singular values, the rank-k
    /// approximation U·S·Vt (unique when σ_k &gt; σ_k+1, and sign-free) and, for singular values well separated from
    /// their neighbours, each singular vector up to sign.</summary>
    private void AssertSvdMatchesCpu(float[] a, int m, int n, int? rank)
    {
        int k = rank ?? Math.Min(m, n);
        var (uc, sc, vtc) = Svd(Cpu, a, m, n, rank);
        var (ug, sg, vtg) = Svd(_gpu, a, m, n, rank);
        double scale = Math.Max(1, FrobeniusNorm(a));
        Assert.Equal(k, sg.Length);
        AssertClose(Wide(sc), Wide(sg), 1e-5 * scale, "S");
        for (int c = 1; c < k; c++) Assert.True(sg[c - 1] >= sg[c], $"S not descending at {c}: {sg[c - 1]} < {sg[c]}");
        Assert.True(sg[k - 1] >= 0);
        AssertOrthonormal(ug, m, k, ofRows: false, "UᵀU");
        AssertOrthonormal(vtg, k, n, ofRows: true, "Vt·Vtᵀ");
        var approxGpu = Compose(ug, sg, vtg, m, n);
        if (k == Math.Min(m, n)) AssertClose(Wide(a), approxGpu, 1e-5 * scale, "U·S·Vt");
        AssertClose(Compose(uc, sc, vtc, m, n), approxGpu, 1e-4 * scale, "rank-k approximation vs CPU");
        for (int c = 0; c < k; c++)
        {
            double gap = Math.Min(c > 0 ? sc[c - 1] - sc[c] : double.MaxValue, c + 1 < sc.Length ? sc[c] - sc[c + 1] : sc[c]);
            if (gap < 1e-2 * scale) continue;
            double du = 0, dv = 0;
            for (int i = 0; i < m; i++) du += (double)uc[i * k + c] * ug[i * k + c];
            for (int j = 0; j < n; j++) dv += (double)vtc[c * n + j] * vtg[c * n + j];
            Assert.True(Math.Abs(Math.Abs(du) - 1) < 1e-4, $"u_{c}: |cos| = {Math.Abs(du)}");
            Assert.True(Math.Abs(Math.Abs(dv) - 1) < 1e-4, $"v_{c}: |cos| = {Math.Abs(dv)}");
            Assert.True(du * dv > 0, $"u_{c} and v_{c} must flip sign together");
        }
    }

    [Theory]
    [InlineData(1, 1, null)]
    [InlineData(6, 1, null)]     // one column: no Jacobi round at all
    [InlineData(1, 6, null)]     // one row
    [InlineData(9, 5, null)]     // tall, odd column count (an idle slot per round)
    [InlineData(5, 9, null)]     // wide: Jacobi on Aᵀ
    [InlineData(12, 12, null)]
    [InlineData(40, 8, 8)]
    [InlineData(8, 30, 3)]       // wide, truncated
    [InlineData(70, 6, 2)]       // columns longer than CUDA's group (64), truncated
    public void Svd_MatchesCpu(int m, int n, int? rank) => AssertSvdMatchesCpu(Matrix(m, n, 7 * m + n), m, n, rank);

    [Theory]
    [InlineData(12, 8, 3, null)]
    [InlineData(6, 10, 2, null)]   // wide
    [InlineData(10, 10, 4, 6)]     // truncated below min(m, n) but past the rank
    [InlineData(5, 3, 0, null)]    // zero matrix: every singular vector is completed
    [InlineData(3, 7, 0, 2)]
    public void Svd_RankDeficient_MatchesCpu(int m, int n, int rank, int? k) =>
        AssertSvdMatchesCpu(Matrix(m, n, 5 * m + n, rank), m, n, k);

    [Fact]
    public void Svd_WithAnExactlyZeroColumn_CompletesTheMissingVector()
    {
        // A zero column of a tall A stays an exactly zero Jacobi column (no rotation touches it): its left singular
        // vector must come from the completion, orthogonal to the others.
        int m = 8, n = 4;
        var a = Matrix(m, n, 17);
        for (int i = 0; i < m; i++) a[i * n + 2] = 0;
        AssertSvdMatchesCpu(a, m, n, null);
    }

    [Fact]
    public void QrAndSvd_WithCudasGroupSize_MatchCpu()
    {
        // The CPU accelerator runs these kernels with 4 threads per group (see CpuAcceleratorLinalgGroupSize); CUDA runs
        // them with 64, so the reductions and strided loops are checked once at that size too.
        int saved = _gpu.LinalgGroupSize, savedLimit = _gpu.GroupThreadsLimit;
        _gpu.GroupThreadsLimit = IlgpuKernels.LinalgGroupSize;
        _gpu.LinalgGroupSize = IlgpuKernels.LinalgGroupSize;
        try
        {
            var a = Matrix(70, 2, 21);   // columns longer than the group
            var (qc, rc) = Qr(Cpu, a, 70, 2);
            var (qg, rg) = Qr(_gpu, a, 70, 2);
            AssertQrContract(a, qg, rg, 70, 2);
            AssertClose(Wide(qc), Wide(qg), 1e-4, "Q");
            AssertClose(Wide(rc), Wide(rg), 1e-4, "R");
            AssertSvdMatchesCpu(Matrix(4, 3, 22), 4, 3, null);
            AssertSvdMatchesCpu(Matrix(2, 3, 23, rank: 0), 2, 3, null);   // completion at 64 threads
        }
        finally
        {
            _gpu.LinalgGroupSize = saved;
            _gpu.GroupThreadsLimit = savedLimit;
        }
    }

    [Fact]
    public void Svd_ConvergesInFewSweeps()
    {
        // The sweep loop stops at the first sweep that rotates nothing; for a float32 input in double this takes a
        // handful of sweeps, far below the cap, so the loop is not simply running out.
        using var a = Make(_gpu, Matrix(20, 10, 31), 20, 10);
        var (u, s, vt) = LA.Svd(a);
        u.Dispose();
        s.Dispose();
        vt.Dispose();
        Assert.InRange(_gpu.LastSvdSweeps, 2, 15);
    }

    // ---- ops built on QR and SVD -----------------------------------------------------------------

    [Theory]
    [InlineData(24, 16, 2, 1)]
    [InlineData(12, 20, 2, 2)]
    public void RandomizedSvd_MatchesCpu(int m, int n, int rank, int powerIterations)
    {
        // A low-rank matrix plus a little noise: the randomized SVD recovers its leading triplets.
        var a = Matrix(m, n, m + n, rank + 1);
        var noise = Gaussian(m * n, 99);
        for (int i = 0; i < a.Length; i++) a[i] += 1e-3f * noise[i];
        (float[] U, float[] S, float[] Vt) Run(IBackend be)
        {
            using var at = Make(be, a, m, n);
            var (u, s, vt) = LA.RandomizedSvd(at, rank, new Generator(42), oversampling: 2, powerIterations: powerIterations);
            using (u)
            using (s)
            using (vt)
                return (u.ToArray(), s.ToArray(), vt.ToArray());
        }
        var c = Run(Cpu);
        var g = Run(_gpu);
        double scale = FrobeniusNorm(a);
        AssertClose(Wide(c.S), Wide(g.S), 1e-5 * scale, "S");
        AssertOrthonormal(g.U, m, rank, ofRows: false, "UᵀU");
        AssertOrthonormal(g.Vt, rank, n, ofRows: true, "Vt·Vtᵀ");
        AssertClose(Compose(c.U, c.S, c.Vt, m, n), Compose(g.U, g.S, g.Vt, m, n), 1e-4 * scale, "rank-r approximation");
    }

    [Fact]
    public void RangeFinder_MatchesCpu()
    {
        // The range finder's basis orth(A·Ω): the same Ω (host-drawn from one seed) on both backends, and a QR that is
        // unique, so the bases agree elementwise.
        int m = 20, n = 12, r = 4;
        var a = Matrix(m, n, 8);
        float[] Run(IBackend be)
        {
            using var at = Make(be, a, m, n);
            using var omega = Tensor.RandN([n, r], new Generator(3), 1f, be);
            using var sketch = at.MatMul(omega);
            using var q = LA.Orthonormalize(sketch);
            return q.ToArray();
        }
        AssertClose(Wide(Run(Cpu)), Wide(Run(_gpu)), 1e-4, "basis");
    }

    [Theory]
    [InlineData(OnlinePcaOptimizer.Adam)]
    [InlineData(OnlinePcaOptimizer.Sgd)]
    public void OnlinePca_Updates_MatchCpu(OnlinePcaOptimizer optimizer)
    {
        int m = 16, n = 10, r = 3;
        var gs = Enumerable.Range(0, 2).Select(i => Matrix(m, n, 100 + i)).ToArray();
        (float[] P, float[] Step) Run(IBackend be)
        {
            using var noGrad = GradMode.NoGrad();
            using var pca = OnlinePca.RandomInit(m, r, new Generator(1), 0.01f, optimizer, reorthonormalize: true, be);
            foreach (var g in gs)
                using (var gt = Make(be, g, m, n)) pca.Update(gt);
            using var g0 = Make(be, gs[0], m, n);
            using var step = LA.OnlinePcaStep(pca.Projection, g0, 0.01f, reorthonormalize: true);
            return (pca.Projection.ToArray(), step.ToArray());
        }
        var c = Run(Cpu);
        var g = Run(_gpu);
        AssertClose(Wide(c.P), Wide(g.P), 1e-4, "P");
        AssertClose(Wide(c.Step), Wide(g.Step), 1e-4, "OnlinePcaStep");
    }

    // ---- projected optimizers ---------------------------------------------------------------------

    public static TheoryData<string> OptimizerPresets() => new()
    {
        "galore-svd", "galore-rsvd", "galore-range", "osd", "osd-qr", "grass", "frugal-blocks", "frugal-svd", "frugal-random",
    };

    private static ProjectedOptions Preset(string name)
    {
        var o = name switch
        {
            "galore-svd" => ProjectedOptions.GaLore(rank: 2, updateGap: 2),
            "galore-rsvd" => ProjectedOptions.GaLore(rank: 2, updateGap: 2, randomizedSvd: true) with { RsvdOversampling = 2, RsvdPowerIterations = 1 },
            "galore-range" => ProjectedOptions.GaLore(rank: 2, updateGap: 2) with { Projection = ProjectionKind.RangeFinder, Method = "galore-range" },
            "osd" => ProjectedOptions.Osd(rank: 2, pcaLearningRate: 0.05f),
            "osd-qr" => ProjectedOptions.Osd(rank: 2, pcaLearningRate: 0.05f, orthonormalize: true) with { Method = "osd-qr" },
            "grass" => ProjectedOptions.Grass(rank: 2),
            "frugal-blocks" => ProjectedOptions.Frugal(0.5f, FrugalSubspace.Blocks),
            "frugal-svd" => ProjectedOptions.Frugal(0.5f, FrugalSubspace.Svd) with { Method = "frugal-svd" },
            "frugal-random" => ProjectedOptions.Frugal(0.4f, FrugalSubspace.Random) with { Method = "frugal-random" },
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };
        return o with { LearningRate = 0.01f, Seed = 5, ShouldProject = ProjectedOptions.AllMatrices };
    }

    /// <summary>Two steps (the second reuses the basis) on a tall and a wide parameter (left and right projections).</summary>
    private static float[][] RunOptimizer(IBackend be, string preset)
    {
        int[][] shapes = [[8, 6], [5, 7]];
        var ps = shapes.Select((s, i) =>
            ($"w{i}", Make(be, Gaussian(s[0] * s[1], 10 + i), s).RequireGrad().Persist())).ToList();
        try
        {
            using var opt = new ProjectedOptimizer(ps, Preset(preset));
            for (int step = 0; step < 2; step++)
            {
                using (GradMode.NoGrad())
                    for (int i = 0; i < ps.Count; i++)
                    {
                        var p = ps[i].Item2;
                        // G = noise + 0.5·p: structured enough for the projections to matter.
                        using var noise = Make(be, Gaussian(p.Numel, 1000 * step + i), p.Shape.ToArray());
                        using var half = p * 0.5f;
                        p.Grad?.Dispose();
                        p.Grad = (noise + half).Persist();
                    }
                opt.Step();
            }
            return ps.Select(x => x.Item2.ToArray()).ToArray();
        }
        finally
        {
            foreach (var (_, p) in ps)
            {
                p.Grad?.Dispose();
                p.Dispose();
            }
        }
    }

    [Theory]
    [MemberData(nameof(OptimizerPresets))]
    public void OptimizerStep_MatchesCpu(string preset)
    {
        // GRASS and FRUGAL's block subspace go through the indexing kernels as well (row selection, gather, scatter).
        var expected = RunOptimizer(Cpu, preset);
        var actual = RunOptimizer(_gpu, preset);
        for (int i = 0; i < expected.Length; i++)
            AssertClose(Wide(expected[i]), Wide(actual[i]), 1e-4, $"{preset} parameter {i}");
    }
}
