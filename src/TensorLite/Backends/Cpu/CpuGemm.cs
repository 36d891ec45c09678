using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace TensorLite.Backends.Cpu;

/// <summary>
/// Single-precision general matrix multiply for the CPU backend (row-major, BLAS-like semantics).
/// <para>
/// <c>C[m×n] = alpha·op(A)·op(B) + beta·C</c> where op(A) is m×k and op(B) is k×n. When
/// <c>transA</c> is set, A is stored k×m (row-major, leading dimension <c>lda</c>) and op(A) = Aᵀ;
/// likewise B is stored n×k when <c>transB</c> is set. <c>beta == 0</c> overwrites C without reading
/// it, so C may hold garbage (NaN, Inf) on entry.
/// </para>
/// <para>
/// Design (Goto/BLIS style). For each NC-wide column block, op(B) is packed for the whole k range
/// into NR-wide, k-major micro-panels, one per KC-deep slice, in a buffer shared by all threads. Rows
/// are cut into chunks (whole MR-row tiles); for each chunk and KC slice a thread packs that piece
/// of op(A) into MR-tall, k-major micro-panels in its private buffer and a register-tiled
/// micro-kernel (MR×NR accumulators held in SIMD registers, one broadcast-FMA per accumulator per
/// k step) sweeps the tiles: B micro-panel outer (reused from L1/L2), A micro-panels inner. Transposed
/// inputs are handled by the packing routines only (AVX-512 16×16 in-register transposes). Edge
/// tiles are computed in full on zero-padded panels into a scratch tile and merged with scalar code.
/// </para>
/// <para>
/// Threads: the caller plus up to <see cref="MaxThreads"/> − 1 persistent helpers take B panels and
/// row chunks from shared ticket counters (or, for short wide problems, groups of columns), so a
/// core slowed down by other load simply does less of the work. Packing buffers are per-thread
/// native memory, grown on demand and reused: no managed allocation per call once warmed up.
/// Problems with m·n·k below 32K take a simple unblocked loop; below 2M, one thread.
/// </para>
/// <para>
/// Files: this one (tile sizes, the public API, the drivers, small problems), CpuGemm.Packing.cs (packing of op(A)
/// and op(B)), CpuGemm.MicroKernels.cs (the register-tiled kernels) and CpuGemm.ThreadPool.cs (per-thread buffers and
/// the helper threads).
/// </para>
/// </summary>
public static unsafe partial class CpuGemm
{
    // ---------------------------------------------------------------------------------------------
    // Micro-kernel family and block sizes, chosen at startup from what this CPU reports.
    // Family by vector width: where Vector512 is accelerated (AVX-512), the 12×32 tile = 24 zmm
    //     accumulators + 2 B vectors + 1 broadcast (of 32 zmm); otherwise the 6×16 tile = 12 ymm
    //     accumulators + 2 B vectors + 1 broadcast (of 16 ymm). Both reach 90–95 % of the measured FMA
    //     peak on cache-resident panels (Zen 4/5 and Zen 3 respectively, docs/perf.md).
    // KC, MC and the packed-B block come from the cache sizes (CpuGemm.Blocking.cs): KC is the maximum
    //     depth of a k slice (k is cut into equal slices of at most KC, SliceDepth); MC is the tallest
    //     row chunk (chunks are usually smaller: up to 8 per thread, of at least 8 tiles' rows, so that threads
    //     balance dynamically: ChunkRowsFor); NcFor(k) keeps the packed k×NC B block within the block budget.
    // The TL_GEMM_* environment variables override these for tuning experiments only.
    internal static readonly bool Use512 = Vector512.IsHardwareAccelerated;
    internal static readonly int MR = Use512 ? 12 : 6;
    internal static readonly int NR = Use512 ? 32 : 16;
    /// <summary>The caches the block sizes were derived from.</summary>
    internal static readonly CacheSizes Caches = CacheSizes.Detect();
    static readonly Blocking Derived = Blocking.For(Caches, MR, NR);
    internal static readonly int KC = EnvInt("TL_GEMM_KC", Derived.KC);
    internal static readonly int MC = RoundUp(EnvInt("TL_GEMM_MC", Derived.MC), MR);
    internal static readonly int NC = RoundUp(EnvInt("TL_GEMM_NC", 4096), NR);
    internal static readonly int BBlockFloats = EnvInt("TL_GEMM_BBLOCK", Derived.BBlockFloats);
    internal static readonly int ChunksPerThread = EnvInt("TL_GEMM_CHUNKS", 8);
    /// <summary>The shortest row chunk worth a pass over packed op(B) (ChunkRowsFor): 8 tiles.</summary>
    internal static readonly int MinChunkRows = EnvInt("TL_GEMM_MINROWS", 8 * MR);

    /// <summary>Problems with m·n·k below this take the simple unblocked path.</summary>
    internal const long SmallThreshold = 32 * 1024;
    /// <summary>Problems with m·n·k below this run on the calling thread only.</summary>
    internal static readonly long ParallelThreshold = EnvInt("TL_GEMM_PAR", 1 << 21);

    /// <summary>How many stored rows ahead the packers prefetch: 1 KiB of packed micro-panel ahead, i.e. 8 rows of
    /// 32 floats or 16 rows of 16 (on Zen 3, 16 rows took non-transposed B packing from 9 to 12 GB/s; 8 was tuned
    /// for the 32-wide panels on Zen 4).</summary>
    internal static readonly int PrefetchRows = EnvInt("TL_GEMM_PF", 256 / NR);
    internal static readonly bool Prof = Environment.GetEnvironmentVariable("TL_PROF") == "1";
    internal static readonly long[] ProfT = new long[8];
    static int s_maxThreads = Environment.ProcessorCount;

    /// <summary>
    /// Upper bound on the threads one GEMM call uses (the calling thread included). Defaults to
    /// <see cref="Environment.ProcessorCount"/>; must be at least 1.
    /// </summary>
    public static int MaxThreads
    {
        get => s_maxThreads;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            s_maxThreads = value;
        }
    }

    static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), out int v) && v > 0 ? v : fallback;

    static int RoundUp(int x, int m) => (x + m - 1) / m * m;

    struct Args
    {
        public bool TransA, TransB;
        public int M, N, K;
        public float Alpha, Beta;
        public float* A, B, C;
        public int Lda, Ldb, Ldc;
        /// <summary>Element types of A and B (float32, bfloat16 or float16); A and B point at elements of that
        /// type. Half operands are widened to float32 by the packing routines; C is always float32.</summary>
        public DType AType, BType;
    }

    /// <summary>Advances a typed operand pointer by <paramref name="elements"/> elements of its dtype.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float* Advance(float* p, DType type, long elements) =>
        type == DType.Float32 ? p + elements : (float*)((ushort*)p + elements);

    static void RequireGemmType(DType t, string name)
    {
        if (t is not (DType.Float32 or DType.BFloat16 or DType.Float16))
            throw new ArgumentException($"GEMM operand {name} must be float32, bfloat16 or float16, got {t.Name()}.", name);
    }

    // ---------------------------------------------------------------------------------------------
    // Public API
    // ---------------------------------------------------------------------------------------------

    /// <summary>
    /// Row-major SGEMM: <c>C = alpha·op(A)·op(B) + beta·C</c>, op(A) m×k, op(B) k×n, C m×n.
    /// </summary>
    /// <param name="transA">A is stored k×m (row-major, leading dimension lda) and op(A) = Aᵀ.</param>
    /// <param name="transB">B is stored n×k (row-major, leading dimension ldb) and op(B) = Bᵀ.</param>
    /// <param name="m">Rows of op(A) and C.</param>
    /// <param name="n">Columns of op(B) and C.</param>
    /// <param name="k">Columns of op(A), rows of op(B): the summed dimension.</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A as stored.</param>
    /// <param name="lda">Row stride of A as stored: ≥ k (≥ m when transA).</param>
    /// <param name="b">B as stored.</param>
    /// <param name="ldb">Row stride of B as stored: ≥ n (≥ k when transB).</param>
    /// <param name="beta">Scale of C's previous contents (0: C is only written, never read).</param>
    /// <param name="c">C, updated in place.</param>
    /// <param name="ldc">Row stride of C: ≥ n.</param>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        Validate(transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc);
        var g = new Args
        {
            TransA = transA, TransB = transB, M = m, N = n, K = k, Alpha = alpha, Beta = beta,
            A = a, B = b, C = c, Lda = lda, Ldb = ldb, Ldc = ldc,
        };
        Run(in g, Workspace.Current, allowParallel: true);
    }

    /// <summary>
    /// Mixed-precision GEMM: like <see cref="Sgemm"/>, but A and B may each hold float32, bfloat16 or float16
    /// elements (<paramref name="a"/>, <paramref name="b"/> point at elements of that type; leading dimensions are
    /// in elements). Half operands are converted to float32 while they are packed; products accumulate in float32
    /// and C is float32. With two float32 operands this is exactly <see cref="Sgemm"/>.
    /// </summary>
    public static void Gemm(bool transA, bool transB, int m, int n, int k, float alpha,
        void* a, DType aType, int lda, void* b, DType bType, int ldb, float beta, float* c, int ldc)
    {
        RequireGemmType(aType, nameof(aType));
        RequireGemmType(bType, nameof(bType));
        Validate(transA, transB, m, n, k, alpha, (float*)a, lda, (float*)b, ldb, c, ldc);
        var g = new Args
        {
            TransA = transA, TransB = transB, M = m, N = n, K = k, Alpha = alpha, Beta = beta,
            A = (float*)a, B = (float*)b, C = c, Lda = lda, Ldb = ldb, Ldc = ldc, AType = aType, BType = bType,
        };
        Run(in g, Workspace.Current, allowParallel: true);
    }

    /// <summary>Batched <see cref="Gemm"/>: strides in elements of each operand's own dtype (0 broadcasts A or B).</summary>
    public static void GemmBatched(bool transA, bool transB, int batch, int m, int n, int k, float alpha,
        void* a, DType aType, long strideA, int lda, void* b, DType bType, long strideB, int ldb, float beta,
        float* c, long strideC, int ldc)
    {
        RequireGemmType(aType, nameof(aType));
        RequireGemmType(bType, nameof(bType));
        BatchedCore(transA, transB, batch, m, n, k, alpha, (float*)a, aType, strideA, lda, (float*)b, bType, strideB, ldb,
            beta, c, strideC, ldc);
    }

    /// <summary>
    /// Batched row-major SGEMM: for i in [0, batch): <c>C_i = alpha·op(A_i)·op(B_i) + beta·C_i</c>
    /// with <c>A_i = a + i·strideA</c> (likewise B, C; strides in elements). A stride of 0
    /// broadcasts the same operand to every batch entry (allowed for A and B, not for C).
    /// </summary>
    public static void SgemmBatched(bool transA, bool transB, int batch, int m, int n, int k, float alpha,
        float* a, long strideA, int lda, float* b, long strideB, int ldb, float beta,
        float* c, long strideC, int ldc) =>
        BatchedCore(transA, transB, batch, m, n, k, alpha, a, DType.Float32, strideA, lda, b, DType.Float32, strideB, ldb,
            beta, c, strideC, ldc);

    static void BatchedCore(bool transA, bool transB, int batch, int m, int n, int k, float alpha,
        float* a, DType aType, long strideA, int lda, float* b, DType bType, long strideB, int ldb, float beta,
        float* c, long strideC, int ldc)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        Validate(transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc);
        if (batch == 0 || m == 0 || n == 0) return;
        if (batch > 1 && strideC == 0)
            throw new ArgumentException("strideC must be non-zero when batch > 1 (C entries would alias).", nameof(strideC));

        var g = new Args
        {
            TransA = transA, TransB = transB, M = m, N = n, K = k, Alpha = alpha, Beta = beta,
            A = a, B = b, C = c, Lda = lda, Ldb = ldb, Ldc = ldc, AType = aType, BType = bType,
        };
        long work = (long)m * n * k;
        int threads = Math.Min(MaxThreads, batch);
        if (threads > 1 && work < ParallelThreshold && (long)batch * work >= ParallelThreshold
            && Monitor.TryEnter(Pool.Gate))
        {
            // Many small/medium GEMMs: one whole GEMM per thread at a time.
            try { Pool.RunBatched(in g, batch, strideA, strideB, strideC, threads); }
            finally { Monitor.Exit(Pool.Gate); }
            return;
        }
        var ws = Workspace.Current;
        for (int i = 0; i < batch; i++)
        {
            var gi = g;
            gi.A = Advance(a, aType, i * strideA);
            gi.B = Advance(b, bType, i * strideB);
            gi.C = c + i * strideC;
            Run(in gi, ws, allowParallel: true);
        }
    }

    static void Validate(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float* c, int ldc)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (lda < Math.Max(1, transA ? m : k)) throw new ArgumentOutOfRangeException(nameof(lda), lda, "lda is smaller than the row width of A as stored.");
        if (ldb < Math.Max(1, transB ? k : n)) throw new ArgumentOutOfRangeException(nameof(ldb), ldb, "ldb is smaller than the row width of B as stored.");
        if (ldc < Math.Max(1, n)) throw new ArgumentOutOfRangeException(nameof(ldc), ldc, "ldc is smaller than n.");
        if (m > 0 && n > 0)
        {
            if (c == null) throw new ArgumentNullException(nameof(c));
            if (k > 0 && alpha != 0f)
            {
                if (a == null) throw new ArgumentNullException(nameof(a));
                if (b == null) throw new ArgumentNullException(nameof(b));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Drivers
    // ---------------------------------------------------------------------------------------------

    static void Run(in Args g, Workspace ws, bool allowParallel)
    {
        if (g.M == 0 || g.N == 0) return;
        if (g.K == 0 || g.Alpha == 0f)
        {
            ScaleC(in g);
            return;
        }
        long work = (long)g.M * g.N * g.K;
        if (work < SmallThreshold)
        {
            SmallGemm(in g);
            return;
        }
        int ks = SuperSliceDepth(g.K, g.N);
        if (ks < g.K)
        {
            // One GEMM per k super-slice, accumulating into C (beta only on the first).
            for (int pc = 0; pc < g.K; pc += ks)
            {
                var part = g;
                part.K = Math.Min(ks, g.K - pc);
                part.A = Advance(g.A, g.AType, g.TransA ? (long)pc * g.Lda : pc);
                part.B = Advance(g.B, g.BType, g.TransB ? pc : (long)pc * g.Ldb);
                part.Beta = pc == 0 ? g.Beta : 1f;
                RunBlocked(in part, ws, allowParallel);
            }
            return;
        }
        RunBlocked(in g, ws, allowParallel);
    }

    /// <summary>
    /// Depth of the k super-slices a deep, narrow problem is cut into (k itself when it is not cut). The blocked
    /// driver packs op(B) for all of k per column block and keeps that block within the B budget, so a large k
    /// narrows the column blocks, and op(A) (m×k) is packed again for every one of them: an LM head's
    /// dX = dY·W (k = vocabulary, n = hidden) repacked its 2048×32000 dY 4–32 times. Cutting k instead keeps each
    /// super-slice's column block as wide as n (up to NC), so op(A) is packed once; the price is one more
    /// read-modify-write pass over C (m×n) per super-slice, cheaper than another pass over op(A) (m×k) when k > 2n.
    /// </summary>
    internal static int SuperSliceDepth(int k, int n)
    {
        long width = RoundUp(Math.Min(n, NC), NR);
        if (k <= 2L * n || k * width <= BBlockFloats) return k;
        int maxDepth = (int)Math.Max(KC, BBlockFloats / width / KC * KC);
        int parts = (k + maxDepth - 1) / maxDepth;
        return (k + parts - 1) / parts;
    }

    /// <summary>The blocked algorithm on one problem: row-parallel, column-parallel or on the calling thread.</summary>
    static void RunBlocked(in Args g, Workspace ws, bool allowParallel)
    {
        long work = (long)g.M * g.N * g.K;
        int mt = (g.M + MR - 1) / MR, np = (g.N + NR - 1) / NR;
        int threads = allowParallel && work >= ParallelThreshold ? (int)Math.Min(MaxThreads, (long)mt * np) : 1;
        if (threads > 1 && Monitor.TryEnter(Pool.Gate))
        {
            try
            {
                // Few row tiles: split the columns instead (each thread packs the small A itself).
                if (mt < 2 * threads && g.M <= MC) Pool.Run(in g, threads, Pool.Mode.SplitN, ws);
                else Pool.Run(in g, threads, Pool.Mode.SplitM, ws);
            }
            finally { Monitor.Exit(Pool.Gate); }
            return;
        }
        // Single thread (or the pool is busy with another caller's GEMM).
        float* bBuf = ws.EnsureB(BBufferFloats(in g, out long half));
        float* aBuf = ws.EnsureA(ABufferFloats(MC));
        BlockedSplitM(in g, bBuf, half, aBuf, ws.Tile, null, ChunkRowsFor(g.M, 1));
    }

    /// <summary>
    /// Floats from one packed A micro-panel to the next: MR·kb plus one cache line. Without the extra line MR·kb·4
    /// bytes is a whole number of 4 KiB pages for MR 6 at kb 512 (and MR 12 at kb 256), and a transposed-A pack,
    /// which writes a few floats into every micro-panel of the chunk for each stored row, then stores to addresses
    /// that all map to the same L1 set: 5.7 GB/s instead of 15 (`pack` mode, Zen 3, 2026-12-03).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int APanelStride(int kb) => MR * kb + 16;

    /// <summary>Floats for a packed-A buffer holding <paramref name="rows"/> rows (whole micro-panels) of up to KC k steps.</summary>
    internal static long ABufferFloats(int rows) => (long)((rows + MR - 1) / MR) * APanelStride(KC);

    /// <summary>Floats for the packed-B buffer of the row-parallel path (two halves if several NC blocks).</summary>
    static long BBufferFloats(in Args g, out long half)
    {
        int nc = NcFor(g.K);
        half = (long)g.K * RoundUp(Math.Min(nc, g.N), NR);
        return g.N > nc ? 2 * half : half;
    }

    /// <summary>Diagnostics: packs all of op(A) (m×k) the way the driver does, chunk by chunk; returns seconds.</summary>
    internal static double ProbePackA(bool transA, int m, int k, float* a, int lda, float* dst)
    {
        var g = new Args { TransA = transA, M = m, K = k, A = a, Lda = lda };
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int ic = 0; ic < m; ic += MC)
            for (int pc = 0; pc < k; pc += KC)
                PackA(in g, ic, Math.Min(MC, m - ic), pc, Math.Min(KC, k - pc), dst);
        return System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>Diagnostics: packs all of op(B) (k×n) into micro-panels; returns seconds (dst: k·roundup(n) floats).</summary>
    internal static double ProbePackB(bool transB, int n, int k, float* b, int ldb, float* dst)
    {
        var g = new Args { TransB = transB, N = n, K = k, B = b, Ldb = ldb };
        int np = (n + NR - 1) / NR, ncPad = np * NR;
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int pc = 0; pc < k; pc += KC)
        {
            int kb = Math.Min(KC, k - pc);
            for (int q = 0; q < np; q++)
                PackB(in g, pc, kb, q * NR, Math.Min(NR, n - q * NR), dst + (long)pc * ncPad + (long)q * kb * NR);
        }
        return System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>Next work item: from a shared ticket counter, or sequentially when running alone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int NextItem(int[]? tickets, int slot, ref int local) =>
        tickets is null ? local++ : Interlocked.Increment(ref tickets[slot]) - 1;

    /// <summary>Ticket slots are 16 ints apart (one cache line) to avoid false sharing.</summary>
    const int TicketStride = 16;

    /// <summary>
    /// Depth of the k slices: as few slices as KC allows, of equal depth (k = 1024 gives 4×256, not
    /// 320+320+320+64: a shallow last slice would cost a whole pass over C for little work).
    /// </summary>
    static int SliceDepth(int k)
    {
        int slices = Math.Max(1, (k + KC - 1) / KC);
        return (k + slices - 1) / slices;
    }

    /// <summary>Width of the NC block for a given k: the packed k×NC B block stays near 8 MiB (L3).</summary>
    static int NcFor(int k) => Math.Clamp(BBlockFloats / Math.Max(k, 1) / NR * NR, NR, NC);

    /// <summary>
    /// Row-chunk height for the row-parallel path (whole tiles, ≤ MC): up to <see cref="ChunksPerThread"/> chunks per
    /// thread, so that threads balance dynamically, but none shorter than <see cref="MinChunkRows"/>, and a whole
    /// number of chunks per thread so that equally fast threads finish together. Why a minimum: a chunk reads all of the
    /// column block's packed op(B) once per k slice, and for the deep dW shapes that block (k × n floats) is beyond L2,
    /// so a chunk of r rows does only r/2 flops per byte of B it streams from L3. A 256×256×2048 dW cut into 8 chunks of
    /// 36 rows per thread ran at 53 % of the 2-thread FMA peak and 68 % of one thread's; with this rule, 62 % and 74 %
    /// (Xeon, AVX-512, medians of 6 processes each, docs/perf.md 2026-12-04).
    /// </summary>
    internal static int ChunkRowsFor(int m, int threads)
    {
        int perThread = Math.Clamp(m / (threads * MinChunkRows), 1, ChunksPerThread);
        int chunks = threads * perThread;
        return Math.Clamp(RoundUp((m + chunks - 1) / chunks, MR), MR, MC);
    }

    /// <summary>
    /// Row-parallel blocked algorithm, run by every participating thread. For each NC-wide column
    /// block the participants pack op(B) for the whole k range (KC×NR micro-panels handed out by
    /// ticket) into a shared buffer, wait until every panel is packed, then take row chunks by
    /// ticket; for each chunk a thread runs the KC loop, packing its slice of op(A) privately and
    /// sweeping all micro-panels.
    /// <para>
    /// Nobody waits for a thread that has not shown up: the waits are on completion counters
    /// (panels packed, chunks finished), not on a barrier of participants, so a helper that wakes
    /// late (or never, on a busy machine) just finds fewer tickets left. With several NC blocks the
    /// B buffer is double-buffered (<paramref name="bHalf"/> floats apart); before repacking a half,
    /// a thread waits until every chunk of the block that last used it has finished.
    /// </para>
    /// Layout: slice pc starts at pc·ncPad, micro-panel q of that slice at + q·kb·NR.
    /// Ticket slots per NC block: +0 pack tickets, +1 panels packed, +2 chunk tickets, +3 chunks done.
    /// </summary>
    static void BlockedSplitM(in Args g, float* bBuf, long bHalf, float* aBuf, float* tile, int[]? tickets, int chunkRows)
    {
        int nr = NR, kcMax = SliceDepth(g.K), ncMax = NcFor(g.K);
        int ncPad = RoundUp(Math.Min(ncMax, g.N), nr);
        int nChunks = (g.M + chunkRows - 1) / chunkRows;
        int nSlices = (g.K + kcMax - 1) / kcMax;
        int blk = 0;
        for (int jc = 0; jc < g.N; jc += ncMax, blk++)
        {
            int nb = Math.Min(ncMax, g.N - jc);
            int np = (nb + nr - 1) / nr;
            int items = nSlices * np;
            float* bp = bBuf + (blk & 1) * bHalf;
            int slot = 4 * blk * TicketStride, local = 0;
            long t0 = Prof ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
            if (tickets != null && blk >= 2)
                WaitFor(tickets, slot - 8 * TicketStride + 3 * TicketStride, nChunks); // block blk-2 done with this half
            for (int item; (item = NextItem(tickets, slot, ref local)) < items;)
            {
                int sl = item / np, q = item - sl * np;
                int pc = sl * kcMax, kb = Math.Min(kcMax, g.K - pc);
                PackB(in g, pc, kb, jc + q * nr, Math.Min(nr, nb - q * nr), bp + (long)pc * ncPad + (long)q * kb * nr);
                if (tickets != null) Interlocked.Increment(ref tickets[slot + TicketStride]);
            }
            long t1 = Prof ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
            if (tickets != null) WaitFor(tickets, slot + TicketStride, items);
            if (Prof) { long t2 = System.Diagnostics.Stopwatch.GetTimestamp(); Interlocked.Add(ref ProfT[0], t1 - t0); Interlocked.Add(ref ProfT[1], t2 - t1); }

            local = 0;
            for (int ch; (ch = NextItem(tickets, slot + 2 * TicketStride, ref local)) < nChunks;)
            {
                int ic = ch * chunkRows;
                int mb = Math.Min(chunkRows, g.M - ic);
                for (int pc = 0; pc < g.K; pc += kcMax)
                {
                    int kb = Math.Min(kcMax, g.K - pc);
                    float beta = pc == 0 ? g.Beta : 1f;
                    bool readC = pc != 0 || g.Beta != 0f;
                    long t3 = Prof ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
                    PackA(in g, ic, mb, pc, kb, aBuf);
                    long t4 = Prof ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
                    MacroKernel(in g, aBuf, mb, ic, bp + (long)pc * ncPad, 0, np, jc, nb, kb, beta, readC, tile);
                    if (Prof) { long t5 = System.Diagnostics.Stopwatch.GetTimestamp(); Interlocked.Add(ref ProfT[2], t4 - t3); Interlocked.Add(ref ProfT[3], t5 - t4); }
                }
                if (tickets != null) Interlocked.Increment(ref tickets[slot + 3 * TicketStride]);
                if (Prof) Interlocked.Increment(ref ProfT[Thread.CurrentThread.IsBackground ? 6 : 7]);
            }
        }
    }

    /// <summary>Spins (yielding, never sleeping 1 ms) until tickets[slot] reaches target.</summary>
    static void WaitFor(int[] tickets, int slot, int target)
    {
        if (Volatile.Read(ref tickets[slot]) >= target) return;
        var sw = new SpinWait();
        while (Volatile.Read(ref tickets[slot]) < target) sw.SpinOnce(sleep1Threshold: -1);
    }

    /// <summary>
    /// Column-parallel variant for short, wide problems (m ≤ MC): threads take groups of B micro-panels
    /// by ticket and run the whole k loop for their group (so no two threads ever update the same C
    /// columns), repacking the small op(A) per KC slice and packing the group's B panels privately.
    /// No barrier is needed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void BlockedSplitN(in Args g, float* bBuf, float* aBuf, float* tile, int[]? tickets, int groupPanels)
    {
        int nr = NR, kcMax = SliceDepth(g.K);
        int npAll = (g.N + nr - 1) / nr;
        int nGroups = (npAll + groupPanels - 1) / groupPanels;
        int local = 0;
        for (int grp; (grp = NextItem(tickets, 0, ref local)) < nGroups;)
        {
            int jc = grp * groupPanels * nr;
            int nb = Math.Min(groupPanels * nr, g.N - jc);
            int np = (nb + nr - 1) / nr;
            for (int pc = 0; pc < g.K; pc += kcMax)
            {
                int kb = Math.Min(kcMax, g.K - pc);
                float beta = pc == 0 ? g.Beta : 1f;
                bool readC = pc != 0 || g.Beta != 0f;
                PackA(in g, 0, g.M, pc, kb, aBuf);
                for (int q = 0; q < np; q++)
                    PackB(in g, pc, kb, jc + q * nr, Math.Min(nr, nb - q * nr), bBuf + (long)q * kb * nr);
                MacroKernel(in g, aBuf, g.M, 0, bBuf, 0, np, jc, nb, kb, beta, readC, tile);
            }
        }
    }

    /// <summary>
    /// Sweeps packed A (mb rows starting at row ic) against packed B panels [q0, q1) of the block
    /// starting at column jc (nb columns wide): B micro-panel outer (it stays in L1), A micro-panels
    /// inner (streamed from L2).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void MacroKernel(in Args g, float* aBuf, int mb, int ic, float* bp, int q0, int q1, int jc, int nb,
        int kb, float beta, bool readC, float* tile)
    {
        int mr = MR, nr = NR;
        for (int q = q0; q < q1; q++)
        {
            int j = jc + q * nr;
            int nCols = Math.Min(nr, nb - q * nr);
            float* bPanel = bp + (long)q * kb * nr;
            for (int ir = 0; ir < mb; ir += mr)
            {
                int mRows = Math.Min(mr, mb - ir);
                float* aPanel = aBuf + (long)(ir / mr) * APanelStride(kb);
                float* cp = g.C + (long)(ic + ir) * g.Ldc + j;
                if (mRows == mr && nCols == nr)
                {
                    Kernel(kb, aPanel, bPanel, cp, g.Ldc, g.Alpha, beta, readC);
                }
                else
                {
                    Kernel(kb, aPanel, bPanel, tile, nr, 1f, 0f, false);
                    MergeTile(tile, nr, cp, g.Ldc, mRows, nCols, g.Alpha, beta, readC);
                }
            }
        }
    }

    /// <summary>The micro-kernel of the family selected for this CPU's vector width (MR×NR tile).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Kernel(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta, bool readC)
    {
        if (Use512) Kernel12x32(kc, a, b, c, ldc, alpha, beta, readC);
        else Kernel6x16(kc, a, b, c, ldc, alpha, beta, readC);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void MergeTile(float* tile, int ldt, float* c, nint ldc, int rows, int cols, float alpha, float beta, bool readC)
    {
        for (int i = 0; i < rows; i++)
        {
            float* t = tile + i * ldt;
            float* cr = c + i * ldc;
            if (readC)
                for (int j = 0; j < cols; j++) cr[j] = MathF.FusedMultiplyAdd(t[j], alpha, cr[j] * beta);
            else
                for (int j = 0; j < cols; j++) cr[j] = t[j] * alpha;
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Degenerate and small problems
    // ---------------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ScaleC(in Args g)
    {
        for (int i = 0; i < g.M; i++)
        {
            var row = new Span<float>(g.C + (long)i * g.Ldc, g.N);
            if (g.Beta == 0f) row.Clear();
            else if (g.Beta != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(row, g.Beta, row);
        }
    }

    /// <summary>Unblocked row-by-row path for tiny problems (no packing, no threads).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void SmallGemm(in Args g)
    {
        if (g.AType != DType.Float32 || g.BType != DType.Float32)
        {
            SmallGemmMixed(in g);
            return;
        }
        ScaleC(in g);
        int n = g.N;
        for (int i = 0; i < g.M; i++)
        {
            float* cr = g.C + (long)i * g.Ldc;
            for (int p = 0; p < g.K; p++)
            {
                float av = g.Alpha * (g.TransA ? g.A[(long)p * g.Lda + i] : g.A[(long)i * g.Lda + p]);
                if (!g.TransB)
                {
                    float* br = g.B + (long)p * g.Ldb;
                    int j = 0;
                    if (Vector256.IsHardwareAccelerated)
                    {
                        var va = Vector256.Create(av);
                        for (; j + 8 <= n; j += 8)
                            Vector256.Store(Vector256.FusedMultiplyAdd(va, Vector256.Load(br + j), Vector256.Load(cr + j)), cr + j);
                    }
                    for (; j < n; j++) cr[j] = MathF.FusedMultiplyAdd(av, br[j], cr[j]);
                }
                else
                {
                    float* bc = g.B + p;
                    for (int j = 0; j < n; j++) cr[j] = MathF.FusedMultiplyAdd(av, bc[(long)j * g.Ldb], cr[j]);
                }
            }
        }
    }

    /// <summary>Scalar path for tiny problems with a half-precision operand (float32 accumulation).</summary>
    static void SmallGemmMixed(in Args g)
    {
        ScaleC(in g);
        for (int i = 0; i < g.M; i++)
        {
            float* cr = g.C + (long)i * g.Ldc;
            for (int p = 0; p < g.K; p++)
            {
                float av = g.Alpha * HalfKernels.Load(g.A, g.AType, g.TransA ? (long)p * g.Lda + i : (long)i * g.Lda + p);
                for (int j = 0; j < g.N; j++)
                    cr[j] = MathF.FusedMultiplyAdd(av, HalfKernels.Load(g.B, g.BType, g.TransB ? (long)j * g.Ldb + p : (long)p * g.Ldb + j), cr[j]);
            }
        }
    }
}
