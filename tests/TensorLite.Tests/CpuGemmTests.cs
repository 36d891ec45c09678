using FsCheck;
using FsCheck.Xunit;
using TensorLite.Backends.Cpu;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// CpuGemm against a naive double-precision reference. Shapes are chosen around the register tile
/// (12×32 with AVX-512, 6×16 with AVX2), the KC/MC/NC cache blocks and the small/parallel
/// thresholds, so every path (small, blocked single-thread, blocked multi-thread, edge tiles) runs.
/// </summary>
public unsafe class CpuGemmTests
{
    const double Eps = 1.0 / (1 << 23); // float32 unit roundoff ×2
    const float Sentinel = 12345.5f;

    /// <summary>One GEMM problem with its operands stored as the API sees them.</summary>
    sealed class Problem
    {
        public bool TA, TB;
        public int M, N, K, Lda, Ldb, Ldc;
        public float Alpha, Beta;
        public float[] A = [], B = [], C = [], C0 = [];

        public static Problem Make(bool ta, bool tb, int m, int n, int k, float alpha, float beta,
            int padA = 0, int padB = 0, int padC = 0, int seed = 1, bool nanC = false)
        {
            var rng = new Random(seed);
            var p = new Problem { TA = ta, TB = tb, M = m, N = n, K = k, Alpha = alpha, Beta = beta };
            int aRows = ta ? k : m, aCols = ta ? m : k;
            int bRows = tb ? n : k, bCols = tb ? k : n;
            p.Lda = Math.Max(1, aCols + padA);
            p.Ldb = Math.Max(1, bCols + padB);
            p.Ldc = Math.Max(1, n + padC);
            p.A = Fill(rng, aRows, aCols, p.Lda);
            p.B = Fill(rng, bRows, bCols, p.Ldb);
            p.C = Fill(rng, m, n, p.Ldc);
            if (nanC)
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) p.C[i * p.Ldc + j] = float.NaN;
            p.C0 = (float[])p.C.Clone();
            return p;
        }

        static float[] Fill(Random rng, int rows, int cols, int ld)
        {
            var x = new float[Math.Max(1, rows * ld)];
            Array.Fill(x, Sentinel);
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) x[i * ld + j] = (float)(rng.NextDouble() * 2 - 1);
            return x;
        }

        public double OpA(int i, int p) => TA ? A[p * Lda + i] : A[i * Lda + p];
        public double OpB(int p, int j) => TB ? B[j * Ldb + p] : B[p * Ldb + j];

        public void Run()
        {
            fixed (float* a = A, b = B, c = C)
                CpuGemm.Sgemm(TA, TB, M, N, K, Alpha, a, Lda, b, Ldb, Beta, c, Ldc);
        }

        /// <summary>
        /// Compares C with the double reference. Per element the tolerance is
        /// 4·sqrt(k+1)·eps·(|alpha|·Σ|a·b| + |beta·c0|) — a random-walk rounding bound, far below any
        /// indexing or missing-term error (each term is O(1/k) of the magnitude). Padding must be intact.
        /// </summary>
        public string? Verify()
        {
            for (int i = 0; i < M; i++)
            {
                for (int j = 0; j < N; j++)
                {
                    double s = 0, mag = 0;
                    for (int p = 0; p < K; p++)
                    {
                        double t = OpA(i, p) * OpB(p, j);
                        s += t;
                        mag += Math.Abs(t);
                    }
                    double c0 = C0[i * Ldc + j];
                    double expect = Alpha * s + (Beta == 0 ? 0 : Beta * c0);
                    mag = Math.Abs(Alpha) * mag + (Beta == 0 ? 0 : Math.Abs(Beta * c0));
                    double tol = 4 * Math.Sqrt(K + 1) * Eps * mag + 1e-30;
                    double got = C[i * Ldc + j];
                    if (!(Math.Abs(got - expect) <= tol))
                        return $"C[{i},{j}] = {got}, expected {expect} (tol {tol:E2}) for {this}";
                }
                for (int j = N; j < Ldc; j++)
                    if (C[i * Ldc + j] != Sentinel) return $"padding C[{i},{j}] overwritten for {this}";
            }
            return null;
        }

        public override string ToString() =>
            $"transA={TA} transB={TB} m={M} n={N} k={K} alpha={Alpha} beta={Beta} lda={Lda} ldb={Ldb} ldc={Ldc}";
    }

    static void Check(bool ta, bool tb, int m, int n, int k, float alpha = 1f, float beta = 0f,
        int padA = 0, int padB = 0, int padC = 0, int seed = 1, bool nanC = false)
    {
        var p = Problem.Make(ta, tb, m, n, k, alpha, beta, padA, padB, padC, seed, nanC);
        p.Run();
        Assert.Null(p.Verify());
    }

    public static TheoryData<int, int, int> EdgeShapes()
    {
        var d = new TheoryData<int, int, int>();
        // around the register tile (MR 12/6, NR 32/16) with k spanning 1, odd, and the k-slice
        // boundaries (KC, 256–512 from the caches: k is cut into equal slices of at most KC)
        foreach (var (m, n, k) in new[]
                 {
                     (1, 1, 1), (1, 33, 7), (13, 1, 5), (3, 5, 300), (11, 31, 255), (12, 32, 256),
                     (13, 33, 257), (23, 63, 129), (24, 64, 64), (25, 65, 513), (36, 96, 100),
                     (37, 97, 31), (6, 16, 400), (7, 17, 401), (5, 15, 399), (49, 47, 45),
                     (11, 31, 319), (12, 32, 320), (13, 33, 321), (24, 64, 640), (25, 63, 641),
                     (12, 32, 384), (13, 31, 385), (11, 33, 769), (3, 97, 1153),
                 })
            d.Add(m, n, k);
        return d;
    }

    [Theory]
    [MemberData(nameof(EdgeShapes))]
    public void AllTransposeVariantsMatchReference(int m, int n, int k)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                Check(ta, tb, m, n, k, seed: m * 7919 + n * 31 + k);
    }

    [Theory]
    // m spans two MC-row chunks (MC=264), several threads; k spans KC slices
    [InlineData(300, 97, 300)]
    // large enough for the multi-threaded path, odd everywhere
    [InlineData(131, 151, 263)]
    // n beyond one NC block (4096) with few rows: exercises the N-split thread grid
    [InlineData(13, 4100, 40)]
    // n beyond one NC block with enough rows for the row-parallel path
    [InlineData(60, 4200, 30)]
    // a single row / single column with long k
    [InlineData(1, 700, 3000)]
    [InlineData(700, 1, 3000)]
    public void LargerShapesAllVariants(int m, int n, int k)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                Check(ta, tb, m, n, k, alpha: 0.75f, beta: -1.25f, seed: m + n + k);
    }

    [Theory]
    [InlineData(1f, 0f)]
    [InlineData(1f, 1f)]
    [InlineData(-2f, 0.5f)]
    [InlineData(0.5f, -1f)]
    [InlineData(3f, 0f)]
    public void AlphaBeta(float alpha, float beta)
    {
        Check(false, false, 5, 6, 7, alpha, beta);          // small path
        Check(false, true, 50, 70, 90, alpha, beta);        // blocked, one thread
        Check(true, false, 130, 140, 300, alpha, beta);     // blocked, parallel, two KC blocks
    }

    [Theory]
    [InlineData(4, 4, 4)]
    [InlineData(37, 65, 70)]
    [InlineData(150, 140, 300)]
    public void BetaZeroIgnoresNaNInC(int m, int n, int k)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                Check(ta, tb, m, n, k, alpha: 1.5f, beta: 0f, nanC: true, padC: 3);
    }

    [Fact]
    public void AlphaZeroOrKZeroOnlyScalesC()
    {
        var c = new float[] { 1, 2, 3, 4, 5, 6 };
        fixed (float* pc = c)
        {
            CpuGemm.Sgemm(false, false, 2, 3, 5, 0f, null, 5, null, 3, 2f, pc, 3);
            Assert.Equal(new float[] { 2, 4, 6, 8, 10, 12 }, c);
            CpuGemm.Sgemm(false, false, 2, 3, 0, 1f, null, 1, null, 3, 0.5f, pc, 3);
            Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, c);
            Array.Fill(c, float.NaN);
            CpuGemm.Sgemm(true, true, 2, 3, 0, 1f, null, 2, null, 1, 0f, pc, 3);
            Assert.All(c, x => Assert.Equal(0f, x));
        }
    }

    [Theory]
    [InlineData(9, 10, 11)]
    [InlineData(40, 70, 90)]
    [InlineData(140, 130, 260)]
    public void LeadingDimensionsWiderThanRows(int m, int n, int k)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                Check(ta, tb, m, n, k, alpha: 1f, beta: 0.5f, padA: 5, padB: 17, padC: 33);
    }

    [Property(MaxTest = 120, Arbitrary = new Type[0])]
    public void RandomShapesMatchReference(byte mRaw, byte nRaw, ushort kRaw, bool ta, bool tb,
        byte alphaSel, byte betaSel, byte pad, int seed)
    {
        int m = 1 + mRaw % 70, n = 1 + nRaw % 100, k = 1 + kRaw % 600;
        float[] alphas = [1f, -1f, 0.5f, 2.5f];
        float[] betas = [0f, 1f, -0.75f, 2f];
        int pa = pad & 3, pb = (pad >> 2) & 7, pcd = pad >> 5;
        var p = Problem.Make(ta, tb, m, n, k, alphas[alphaSel % 4], betas[betaSel % 4], pa, pb, pcd, seed);
        p.Run();
        string? err = p.Verify();
        Assert.True(err is null, err);
    }

    /// <summary>
    /// The blocked path (m·n·k above the small-problem threshold) with m and n just around whole register tiles of the
    /// family this CPU runs (MR×NR) and k around one and two KC slices, so slice depths are rarely a multiple of the
    /// packers' 8- or 16-wide transpose blocks: the vectorized packs and their scalar tails meet on every variant.
    /// </summary>
    [Property(MaxTest = 60, Arbitrary = new Type[0])]
    public void PanelEdgesAndSliceTailsMatchReference(byte tilesM, byte restM, byte tilesN, byte restN, ushort kRaw,
        bool ta, bool tb, byte pad, int seed)
    {
        int m = CpuGemm.MR * (2 + tilesM % 4) + restM % CpuGemm.MR;
        int n = CpuGemm.NR * (2 + tilesN % 3) + restN % CpuGemm.NR;
        int k = 120 + kRaw % (CpuGemm.KC + 200);
        var p = Problem.Make(ta, tb, m, n, k, 1f, (pad & 1) == 0 ? 0f : 0.5f, pad & 7, (pad >> 3) & 7, pad >> 6, seed);
        p.Run();
        string? err = p.Verify();
        Assert.True(err is null, err);
    }

    /// <summary>k deep enough that op(B) for all of k would not fit the packed-B budget at the full width of n, and
    /// k &gt; 2n: the driver cuts k into super-slices that accumulate into C (beta applied once, on the first).</summary>
    [Theory]
    [InlineData(7, 5, false, false)]
    [InlineData(7, 5, true, true)]
    [InlineData(7, 5, false, true)]
    [InlineData(19, 5, true, false)]
    public void DeepNarrowProblemsCutIntoKSuperSlicesMatchReference(int m, int n, bool ta, bool tb)
    {
        int width = (n + CpuGemm.NR - 1) / CpuGemm.NR * CpuGemm.NR;
        int k = 2 * CpuGemm.BBlockFloats / width + 17;
        int depth = CpuGemm.SuperSliceDepth(k, n);
        Assert.InRange(depth, CpuGemm.KC, k - 1);
        Assert.True((long)depth * width <= CpuGemm.BBlockFloats);
        Check(ta, tb, m, n, k, alpha: -1.5f, beta: 0.75f, padA: 3, padB: 1, seed: m + k);
    }

    /// <summary>Row chunks (a chunk streams all of packed op(B), so they must not be too short): whole tiles, at most
    /// ChunksPerThread per thread (unless MC caps them), and never shorter than MinChunkRows when m allows every thread
    /// one chunk that tall.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(8)]
    public void RowChunksAreWholeTilesAndNotShorterThanTheMinimum(int threads)
    {
        foreach (int m in new[] { 1, 12, 100, 256, 688, 1376, 2048, 5461, 32000 })
        {
            int rows = CpuGemm.ChunkRowsFor(m, threads);
            Assert.Equal(0, rows % CpuGemm.MR);
            Assert.InRange(rows, CpuGemm.MR, CpuGemm.MC);
            int mcChunks = (m + CpuGemm.MC - 1) / CpuGemm.MC; // MC caps a chunk, however many that makes
            Assert.True((m + rows - 1) / rows <= Math.Max(CpuGemm.ChunksPerThread * threads, mcChunks), $"m {m}: too many chunks of {rows} rows");
            if (m >= threads * CpuGemm.MinChunkRows)
                Assert.True(rows >= Math.Min(CpuGemm.MinChunkRows, CpuGemm.MC), $"m {m}: chunks of {rows} rows");
        }
    }

    [Fact]
    public void ShallowOrWideProblemsAreNotCut()
    {
        Assert.Equal(1024, CpuGemm.SuperSliceDepth(1024, 1024));
        Assert.Equal(5461, CpuGemm.SuperSliceDepth(5461, 5461));
        int k = 4 * CpuGemm.BBlockFloats / 64;
        Assert.Equal(k, CpuGemm.SuperSliceDepth(k, k / 2)); // k = 2n: another pass over C would cost as much as over A
    }

    [Fact]
    public void VerifierRejectsSmallErrors()
    {
        // The reference check must be able to fail: perturb one element of a correct result by
        // a relative 1e-4 (an error one dropped term of k=300 would dwarf) and expect a rejection.
        var p = Problem.Make(false, false, 30, 40, 300, 1f, 0f);
        p.Run();
        Assert.Null(p.Verify());
        int idx = 17 * p.Ldc + 23;
        p.C[idx] += 1e-4f * Math.Max(1f, Math.Abs(p.C[idx]));
        Assert.NotNull(p.Verify());
    }

    [Fact]
    public void ThreadCountDoesNotChangeResultBits()
    {
        var p1 = Problem.Make(false, true, 260, 300, 520, 1f, 0.5f, seed: 5);
        var p2 = Problem.Make(false, true, 260, 300, 520, 1f, 0.5f, seed: 5);
        int saved = CpuGemm.MaxThreads;
        try
        {
            CpuGemm.MaxThreads = 1;
            p1.Run();
            CpuGemm.MaxThreads = Math.Max(2, saved);
            p2.Run();
        }
        finally { CpuGemm.MaxThreads = saved; }
        Assert.Equal(p1.C, p2.C);
        Assert.Null(p2.Verify());
    }

    [Fact]
    public void ConcurrentCallersGetCorrectResults()
    {
        var problems = Enumerable.Range(0, 8)
            .Select(i => Problem.Make(i % 2 == 1, i % 3 == 0, 150 + i, 170 - i, 200 + 3 * i, 1f, 0f, seed: i))
            .ToArray();
        Parallel.ForEach(problems, new ParallelOptions { MaxDegreeOfParallelism = 4 }, p => p.Run());
        foreach (var p in problems) Assert.Null(p.Verify());
    }

    [Theory]
    [InlineData(false, false, 6, 7, 9, 11)]       // tiny: small path per entry
    [InlineData(true, false, 8, 40, 50, 60)]      // many medium entries: one GEMM per thread
    [InlineData(false, true, 3, 130, 140, 150)]   // big entries: each GEMM multi-threaded
    public void BatchedWithStridesAndBroadcast(bool ta, bool tb, int batch, int m, int n, int k)
    {
        foreach (var (bcastA, bcastB) in new[] { (false, false), (true, false), (false, true) })
        {
            var ps = Enumerable.Range(0, batch).Select(i =>
                Problem.Make(ta, tb, m, n, k, 1.5f, 0.25f, padA: 1, padB: 2, padC: 3, seed: 100 + i)).ToArray();
            // broadcast operands: every entry sees entry 0's A (or B)
            if (bcastA) foreach (var p in ps) p.A = ps[0].A;
            if (bcastB) foreach (var p in ps) p.B = ps[0].B;
            long sa = ps[0].A.Length + 3, sb = ps[0].B.Length + 5, sc = ps[0].C.Length + 7;
            var a = new float[bcastA ? sa : sa * batch];
            var b = new float[bcastB ? sb : sb * batch];
            var c = new float[sc * batch];
            for (int i = 0; i < batch; i++)
            {
                if (!bcastA || i == 0) ps[i].A.CopyTo(a, i * sa);
                if (!bcastB || i == 0) ps[i].B.CopyTo(b, i * sb);
                ps[i].C.CopyTo(c, i * sc);
            }
            var p0 = ps[0];
            fixed (float* pa = a, pb = b, pc = c)
                CpuGemm.SgemmBatched(ta, tb, batch, m, n, k, p0.Alpha, pa, bcastA ? 0 : sa, p0.Lda,
                    pb, bcastB ? 0 : sb, p0.Ldb, p0.Beta, pc, sc, p0.Ldc);
            for (int i = 0; i < batch; i++)
            {
                Array.Copy(c, i * sc, ps[i].C, 0, ps[i].C.Length);
                Assert.Null(ps[i].Verify());
            }
        }
    }

    [Fact]
    public void WarmCallsDoNotAllocate()
    {
        // small path, single-thread blocked path, multi-threaded path, batched
        var problems = new[]
        {
            Problem.Make(false, false, 10, 10, 10, 1f, 0f),
            Problem.Make(true, false, 40, 50, 60, 1f, 0f),
            Problem.Make(false, true, 200, 190, 180, 1f, 0.5f),
        };
        foreach (var p in problems) p.Run();
        var bc = new float[4 * 8 * 8];
        var ba = new float[8 * 8];
        fixed (float* pa = ba, pc = bc)
        {
            CpuGemm.SgemmBatched(false, false, 4, 8, 8, 8, 1f, pa, 0, 8, pa, 0, 8, 0f, pc, 64, 8);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 3; i++)
            {
                foreach (var p in problems) p.Run();
                CpuGemm.SgemmBatched(false, false, 4, 8, 8, 8, 1f, pa, 0, 8, pa, 0, 8, 0f, pc, 64, 8);
            }
            long after = GC.GetAllocatedBytesForCurrentThread();
            Assert.Equal(0, after - before);
        }
    }

    [Fact]
    public void InvalidArgumentsThrow()
    {
        var x = new float[64];
        fixed (float* p = x)
        {
            float* q = p;
            Assert.Throws<ArgumentOutOfRangeException>(() => CpuGemm.Sgemm(false, false, -1, 2, 2, 1f, q, 2, q, 2, 0f, q, 2));
            Assert.Throws<ArgumentOutOfRangeException>(() => CpuGemm.Sgemm(false, false, 2, 2, 3, 1f, q, 2, q, 2, 0f, q, 2));
            Assert.Throws<ArgumentOutOfRangeException>(() => CpuGemm.Sgemm(true, false, 4, 2, 3, 1f, q, 3, q, 2, 0f, q, 2));
            Assert.Throws<ArgumentOutOfRangeException>(() => CpuGemm.Sgemm(false, true, 2, 2, 3, 1f, q, 3, q, 2, 0f, q, 2));
            Assert.Throws<ArgumentOutOfRangeException>(() => CpuGemm.Sgemm(false, false, 2, 3, 2, 1f, q, 2, q, 3, 0f, q, 2));
            Assert.Throws<ArgumentNullException>(() => CpuGemm.Sgemm(false, false, 2, 2, 2, 1f, null, 2, q, 2, 0f, q, 2));
            Assert.Throws<ArgumentOutOfRangeException>(() => CpuGemm.MaxThreads = 0);
            Assert.Throws<ArgumentException>(() => CpuGemm.SgemmBatched(false, false, 2, 2, 2, 2, 1f, q, 4, 2, q, 4, 2, 0f, q, 0, 2));
        }
    }
}
