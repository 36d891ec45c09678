using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
/// </summary>
public static unsafe class CpuGemm
{
    // ---------------------------------------------------------------------------------------------
    // Tile and block sizes. Tuned on the 2-core KVM guest this project runs on, which reports an
    // "AMD EPYC" of family 25 model 17 (Zen 4 class: 32 KiB L1D and 1 MiB L2 per core, 32 MiB L3,
    // AVX-512 at one 512-bit FMA per cycle); the same choices suit Zen 5 (48 KiB L1D).
    // Vector512 path: 12×32 tile = 24 zmm accumulators + 2 B vectors + 1 broadcast (of 32 zmm).
    // Vector256 path: 6×16 tile = 12 ymm accumulators + 2 B vectors + 1 broadcast (of 16 ymm).
    // KC: maximum depth of a k slice; k is cut into equal slices of at most KC (SliceDepth). The
    //     kb×NR packed B micro-panel (≤ 48 KiB) is reused from L1/L2 by every A micro-panel of a
    //     chunk while those stream from L2; fewer, deeper slices mean fewer read-modify-write passes
    //     over C. 384 measured a little better than 256, 320 or 512 (differences near the noise).
    // MC: the tallest row chunk; an MC×KC packed A block (≤ 400 KiB) stays in L2. Chunks are
    //     usually smaller (about 8 per thread) so that two threads balance dynamically.
    // NC: widest column block; in practice NcFor(k) keeps the packed k×NC B block ≤ 8 MiB (L3).
    // The TL_GEMM_* environment variables override these for tuning experiments only.
    internal static readonly bool Use512 = Vector512.IsHardwareAccelerated;
    internal static readonly int MR = Use512 ? 12 : 6;
    internal static readonly int NR = Use512 ? 32 : 16;
    internal static readonly int KC = EnvInt("TL_GEMM_KC", 384);
    internal static readonly int MC = RoundUp(EnvInt("TL_GEMM_MC", 264), MR);
    internal static readonly int NC = RoundUp(EnvInt("TL_GEMM_NC", 4096), NR);
    internal static readonly int BBlockFloats = EnvInt("TL_GEMM_BBLOCK", 2 << 20);
    internal static readonly int ChunksPerThread = EnvInt("TL_GEMM_CHUNKS", 8);

    /// <summary>Problems with m·n·k below this take the simple unblocked path.</summary>
    internal const long SmallThreshold = 32 * 1024;
    /// <summary>Problems with m·n·k below this run on the calling thread only.</summary>
    internal static readonly long ParallelThreshold = EnvInt("TL_GEMM_PAR", 1 << 21);

    internal static readonly int PrefetchRows = EnvInt("TL_GEMM_PF", 8);
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
    /// <param name="lda">Row stride of A as stored: ≥ k (≥ m when transA).</param>
    /// <param name="ldb">Row stride of B as stored: ≥ n (≥ k when transB).</param>
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
        float* aBuf = ws.EnsureA((long)MC * KC);
        BlockedSplitM(in g, bBuf, half, aBuf, ws.Tile, null, ChunkRowsFor(g.M, 1));
    }

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

    /// <summary>Row-chunk height for the row-parallel path: ~8 chunks per thread, whole tiles, ≤ MC.</summary>
    static int ChunkRowsFor(int m, int threads) =>
        Math.Clamp(RoundUp((m + ChunksPerThread * threads - 1) / (ChunksPerThread * threads), MR), MR, MC);

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
                float* aPanel = aBuf + (long)ir * kb;
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Kernel(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta, bool readC)
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
    // Packing
    // ---------------------------------------------------------------------------------------------

    /// <summary>
    /// Packs rows [i0, i0+mb) × cols [p0, p0+kb) of op(A) into MR-row micro-panels: panel r holds
    /// element (i0 + r·MR + ii, p0 + p) at offset r·MR·kb + p·MR + ii; rows past mb are zero.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackA(in Args g, int i0, int mb, int p0, int kb, float* dst)
    {
        if (g.AType != DType.Float32)
        {
            PackAHalf(in g, i0, mb, p0, kb, dst);
            return;
        }
        int mr = MR;
        if (g.TransA)
        {
            // op(A)[i, p] = A[p·lda + i]: row p of the stored A holds a contiguous run of op(A)'s
            // column p. Walk the stored rows once, dealing MR-long pieces to the micro-panels.
            int full = mb / mr, rest = mb - full * mr;
            float* src = g.A + (long)p0 * g.Lda + i0;
            for (int p = 0; p < kb; p++)
            {
                float* s = src + (long)p * g.Lda;
                if (Sse.IsSupported && p + PrefetchRows < kb)
                    for (int off = 0; off < mb; off += 16) Sse.Prefetch0(s + PrefetchRows * (nint)g.Lda + off);
                float* dp = dst + p * mr;
                int ip = 0;
                if (mr == 12)
                {
                    for (; ip < full; ip++, s += 12, dp += 12 * kb)
                    {
                        Vector256.Store(Vector256.Load(s), dp);
                        Vector128.Store(Vector128.Load(s + 8), dp + 8);
                    }
                }
                else
                {
                    for (; ip < full; ip++, s += mr, dp += mr * kb)
                        for (int ii = 0; ii < mr; ii++) dp[ii] = s[ii];
                }
                if (rest > 0)
                {
                    int ii = 0;
                    for (; ii < rest; ii++) dp[ii] = s[ii];
                    for (; ii < mr; ii++) dp[ii] = 0f;
                }
            }
            return;
        }
        for (int ir = 0; ir < mb; ir += mr)
        {
            int rows = Math.Min(mr, mb - ir);
            float* d = dst + (long)ir * kb;
            // op(A)[i, p] = A[i·lda + p]
            float* src = g.A + (long)(i0 + ir) * g.Lda + p0;
            if (rows == 12 && mr == 12)
            {
                PackA12Rows(src, g.Lda, kb, d);
                continue;
            }
            for (int ii = 0; ii < rows; ii++)
            {
                float* s = src + (long)ii * g.Lda;
                for (int p = 0; p < kb; p++) d[p * mr + ii] = s[p];
            }
            for (int ii = rows; ii < mr; ii++)
                for (int p = 0; p < kb; p++) d[p * mr + ii] = 0f;
        }
    }

    /// <summary>
    /// Transposes a rows×16 block (rows ≤ 16, row stride ld; missing rows read as zero) into 16
    /// columns: column c (16 values, one per source row) goes to dst + c·dstStride, of which the first
    /// <paramref name="store"/> (16, or 12 for A micro-panels) are written. Four shuffle stages,
    /// every source cache line read once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Transpose16x16(float* src, nint ld, int rows, float* dst, int dstStride, int store)
    {
        var z = Vector512<float>.Zero;
        var r0 = Vector512.Load(src); var r1 = Vector512.Load(src + ld);
        var r2 = Vector512.Load(src + 2 * ld); var r3 = Vector512.Load(src + 3 * ld);
        var r4 = Vector512.Load(src + 4 * ld); var r5 = Vector512.Load(src + 5 * ld);
        var r6 = Vector512.Load(src + 6 * ld); var r7 = Vector512.Load(src + 7 * ld);
        var r8 = Vector512.Load(src + 8 * ld); var r9 = Vector512.Load(src + 9 * ld);
        var r10 = Vector512.Load(src + 10 * ld); var r11 = Vector512.Load(src + 11 * ld);
        var r12 = rows > 12 ? Vector512.Load(src + 12 * ld) : z; var r13 = rows > 13 ? Vector512.Load(src + 13 * ld) : z;
        var r14 = rows > 14 ? Vector512.Load(src + 14 * ld) : z; var r15 = rows > 15 ? Vector512.Load(src + 15 * ld) : z;

        // stage 1: interleave row pairs within 128-bit lanes
        var t0 = Avx512F.UnpackLow(r0, r1); var t1 = Avx512F.UnpackHigh(r0, r1);
        var t2 = Avx512F.UnpackLow(r2, r3); var t3 = Avx512F.UnpackHigh(r2, r3);
        var t4 = Avx512F.UnpackLow(r4, r5); var t5 = Avx512F.UnpackHigh(r4, r5);
        var t6 = Avx512F.UnpackLow(r6, r7); var t7 = Avx512F.UnpackHigh(r6, r7);
        var t8 = Avx512F.UnpackLow(r8, r9); var t9 = Avx512F.UnpackHigh(r8, r9);
        var t10 = Avx512F.UnpackLow(r10, r11); var t11 = Avx512F.UnpackHigh(r10, r11);
        var t12 = Avx512F.UnpackLow(r12, r13); var t13 = Avx512F.UnpackHigh(r12, r13);
        var t14 = Avx512F.UnpackLow(r14, r15); var t15 = Avx512F.UnpackHigh(r14, r15);
        // stage 2: u(4q+c) = column c (+4, +8, +12 in lanes 1..3) of rows 4q..4q+3
        var u0 = Avx512F.Shuffle(t0, t2, 0x44); var u1 = Avx512F.Shuffle(t0, t2, 0xEE);
        var u2 = Avx512F.Shuffle(t1, t3, 0x44); var u3 = Avx512F.Shuffle(t1, t3, 0xEE);
        var u4 = Avx512F.Shuffle(t4, t6, 0x44); var u5 = Avx512F.Shuffle(t4, t6, 0xEE);
        var u6 = Avx512F.Shuffle(t5, t7, 0x44); var u7 = Avx512F.Shuffle(t5, t7, 0xEE);
        var u8 = Avx512F.Shuffle(t8, t10, 0x44); var u9 = Avx512F.Shuffle(t8, t10, 0xEE);
        var u10 = Avx512F.Shuffle(t9, t11, 0x44); var u11 = Avx512F.Shuffle(t9, t11, 0xEE);
        var u12 = Avx512F.Shuffle(t12, t14, 0x44); var u13 = Avx512F.Shuffle(t12, t14, 0xEE);
        var u14 = Avx512F.Shuffle(t13, t15, 0x44); var u15 = Avx512F.Shuffle(t13, t15, 0xEE);
        // stages 3 and 4: gather the 128-bit lanes
        TransposeLanes(u0, u4, u8, u12, dst, 0, dstStride, store);
        TransposeLanes(u1, u5, u9, u13, dst, 1, dstStride, store);
        TransposeLanes(u2, u6, u10, u14, dst, 2, dstStride, store);
        TransposeLanes(u3, u7, u11, u15, dst, 3, dstStride, store);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void TransposeLanes(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d,
        float* dst, int col, int dstStride, int store)
    {
        var va = Avx512F.Shuffle4x128(a, b, 0x88); var vb = Avx512F.Shuffle4x128(c, d, 0x88);
        var vc = Avx512F.Shuffle4x128(a, b, 0xDD); var vd = Avx512F.Shuffle4x128(c, d, 0xDD);
        StoreColumn(Avx512F.Shuffle4x128(va, vb, 0x88), dst + col * dstStride, store);
        StoreColumn(Avx512F.Shuffle4x128(va, vb, 0xDD), dst + (col + 8) * dstStride, store);
        StoreColumn(Avx512F.Shuffle4x128(vc, vd, 0x88), dst + (col + 4) * dstStride, store);
        StoreColumn(Avx512F.Shuffle4x128(vc, vd, 0xDD), dst + (col + 12) * dstStride, store);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreColumn(Vector512<float> v, float* dst, int store)
    {
        if (store == 16)
        {
            Vector512.Store(v, dst);
        }
        else
        {
            Vector256.Store(v.GetLower(), dst);
            Vector128.Store(v.GetUpper().GetLower(), dst + 8);
        }
    }

    /// <summary>Transposing copy of 12 full rows (row stride lda) into a k-major 12-row micro-panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackA12Rows(float* src, nint lda, int kb, float* d)
    {
        if (Avx512F.IsSupported)
        {
            int p = 0;
            for (; p + 16 <= kb; p += 16) Transpose16x16(src + p, lda, 12, d + p * 12, 12, 12);
            src += p;
            d += p * 12;
            kb -= p;
        }
        float* s0 = src, s1 = s0 + lda, s2 = s1 + lda, s3 = s2 + lda, s4 = s3 + lda, s5 = s4 + lda;
        float* s6 = s5 + lda, s7 = s6 + lda, s8 = s7 + lda, s9 = s8 + lda, s10 = s9 + lda, s11 = s10 + lda;
        for (int p = 0; p < kb; p++)
        {
            d[0] = s0[p]; d[1] = s1[p]; d[2] = s2[p]; d[3] = s3[p]; d[4] = s4[p]; d[5] = s5[p];
            d[6] = s6[p]; d[7] = s7[p]; d[8] = s8[p]; d[9] = s9[p]; d[10] = s10[p]; d[11] = s11[p];
            d += 12;
        }
    }

    /// <summary>
    /// Packs cols [j0, j0+cols) × rows [p0, p0+kb) of op(B) into one NR-wide micro-panel: element
    /// (p0 + p, j0 + jj) at offset p·NR + jj; columns past cols are zero.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackB(in Args g, int p0, int kb, int j0, int cols, float* dst)
    {
        if (g.BType != DType.Float32)
        {
            PackBHalf(in g, p0, kb, j0, cols, dst);
            return;
        }
        int nr = NR;
        if (!g.TransB)
        {
            // op(B)[p, j] = B[p·ldb + j]: each k step is a contiguous run of columns.
            float* src = g.B + (long)p0 * g.Ldb + j0;
            for (int p = 0; p < kb; p++)
            {
                float* s = src + (long)p * g.Ldb;
                float* dp = dst + p * nr;
                int jj = 0;
                if (Sse.IsSupported && p + PrefetchRows < kb)
                {
                    // rows are ldb apart (often a multiple of 4 KiB): the hardware prefetcher does not
                    // follow, so fetch a few rows ahead explicitly
                    Sse.Prefetch0(s + PrefetchRows * (nint)g.Ldb);
                    Sse.Prefetch0(s + PrefetchRows * (nint)g.Ldb + cols - 1);
                }
                if (Vector512.IsHardwareAccelerated)
                    for (; jj + 16 <= cols; jj += 16) Vector512.StoreAligned(Vector512.Load(s + jj), dp + jj);
                else
                    for (; jj + 8 <= cols; jj += 8) Vector256.StoreAligned(Vector256.Load(s + jj), dp + jj);
                for (; jj < cols; jj++) dp[jj] = s[jj];
                for (; jj < nr; jj++) dp[jj] = 0f;
            }
        }
        else
        {
            // op(B)[p, j] = B[j·ldb + p]
            float* src = g.B + (long)j0 * g.Ldb + p0;
            if (Avx512F.IsSupported && nr == 32 && cols == 32)
            {
                int p = 0;
                for (; p + 16 <= kb; p += 16)
                {
                    Transpose16x16(src + p, g.Ldb, 16, dst + p * 32, 32, 16);
                    Transpose16x16(src + 16 * (nint)g.Ldb + p, g.Ldb, 16, dst + p * 32 + 16, 32, 16);
                }
                for (; p < kb; p++)
                    for (int jj = 0; jj < 32; jj++) dst[p * 32 + jj] = src[jj * (nint)g.Ldb + p];
                return;
            }
            for (int jj = 0; jj < cols; jj++)
            {
                float* s = src + (long)jj * g.Ldb;
                for (int p = 0; p < kb; p++) dst[p * nr + jj] = s[p];
            }
            for (int jj = cols; jj < nr; jj++)
                for (int p = 0; p < kb; p++) dst[p * nr + jj] = 0f;
        }
    }

    /// <summary>
    /// Packing of a bfloat16/float16 op(A) block: each stored row run of the block is widened (vectorized shift)
    /// into a per-thread float32 staging block that stays in L1/L2, which the float32 packer (transposes included)
    /// then deals into micro-panels. A is never converted as a whole.
    /// </summary>
    static void PackAHalf(in Args g, int i0, int mb, int p0, int kb, float* dst)
    {
        float* stage = Staging.Ensure((long)mb * kb);
        var f = g;
        f.AType = DType.Float32;
        f.A = stage;
        ushort* a = (ushort*)g.A;
        if (g.TransA)
        {
            // stored k×m: rows p0..p0+kb, each a run of mb elements starting at column i0
            for (int p = 0; p < kb; p++) HalfKernels.Widen(a + (long)(p0 + p) * g.Lda + i0, g.AType, stage + (long)p * mb, mb);
            f.Lda = Math.Max(1, mb);
        }
        else
        {
            for (int i = 0; i < mb; i++) HalfKernels.Widen(a + (long)(i0 + i) * g.Lda + p0, g.AType, stage + (long)i * kb, kb);
            f.Lda = Math.Max(1, kb);
        }
        PackA(in f, 0, mb, 0, kb, dst);
    }

    /// <summary>Packing of a bfloat16/float16 op(B) micro-panel through a widened staging block (see <see cref="PackAHalf"/>).</summary>
    static void PackBHalf(in Args g, int p0, int kb, int j0, int cols, float* dst)
    {
        float* stage = Staging.Ensure((long)cols * kb);
        var f = g;
        f.BType = DType.Float32;
        f.B = stage;
        ushort* b = (ushort*)g.B;
        if (g.TransB)
        {
            // stored n×k: rows j0..j0+cols, each a run of kb elements starting at column p0
            for (int j = 0; j < cols; j++) HalfKernels.Widen(b + (long)(j0 + j) * g.Ldb + p0, g.BType, stage + (long)j * kb, kb);
            f.Ldb = Math.Max(1, kb);
        }
        else
        {
            for (int p = 0; p < kb; p++) HalfKernels.Widen(b + (long)(p0 + p) * g.Ldb + j0, g.BType, stage + (long)p * cols, cols);
            f.Ldb = Math.Max(1, cols);
        }
        PackB(in f, 0, kb, 0, cols, dst);
    }

    /// <summary>Per-thread float32 staging buffer for widened half-precision blocks (grown on demand, reused).</summary>
    static class Staging
    {
        [ThreadStatic] static float* t_buffer;
        [ThreadStatic] static long t_capacity;

        public static float* Ensure(long floats)
        {
            // + 16 floats of slack: the float32 packers may prefetch or read whole vectors near the end
            floats += 16;
            if (floats > t_capacity)
            {
                if (t_buffer != null) NativeMemory.AlignedFree(t_buffer);
                t_buffer = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
                t_capacity = floats;
            }
            return t_buffer;
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

    // ---------------------------------------------------------------------------------------------
    // Buffers and thread pool
    // ---------------------------------------------------------------------------------------------

    /// <summary>Per-thread packing buffers (64-byte aligned native memory, grown on demand, reused).</summary>
    sealed class Workspace
    {
        [ThreadStatic] static Workspace? t_current;
        public static Workspace Current => t_current ??= new Workspace();

        float* _a, _b;
        long _aCap, _bCap;
        public readonly float* Tile;

        public Workspace()
        {
            Tile = (float*)NativeMemory.AlignedAlloc((nuint)(16 * 64 * sizeof(float)), 64);
        }

        public float* EnsureA(long floats) => Ensure(ref _a, ref _aCap, floats);
        public float* EnsureB(long floats) => Ensure(ref _b, ref _bCap, floats);

        static float* Ensure(ref float* p, ref long cap, long floats)
        {
            if (floats > cap)
            {
                if (p != null) NativeMemory.AlignedFree(p);
                p = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
                cap = floats;
            }
            return p;
        }

        ~Workspace()
        {
            if (_a != null) NativeMemory.AlignedFree(_a);
            if (_b != null) NativeMemory.AlignedFree(_b);
            NativeMemory.AlignedFree(Tile);
        }
    }

    /// <summary>
    /// Persistent helper threads (MaxThreads − 1 of them; the caller always works too). One GEMM at
    /// a time holds <see cref="Gate"/>; a concurrent caller that cannot take it runs single-threaded.
    /// Helpers are optional: the caller opens the job, wakes them and starts working at once; a
    /// helper that wakes while the job is open takes tickets like the caller, one that wakes after
    /// the caller closed it does nothing. The caller closes the job when no tickets are left and then
    /// waits only for helpers that actually joined. No allocation per call: the job lives in statics.
    /// </summary>
    static class Pool
    {
        public static readonly object Gate = new();
        static Worker[] s_workers = [];
        static int s_open;    // 1 while helpers may join the current job
        static int s_active;  // helpers inside Execute (or deciding whether to enter)
        static Exception? s_error;

        // Current job (written by the caller under Gate before s_open is set).
        public enum Mode { SplitM, SplitN, Batched }
        static Mode s_mode;
        static Args s_args;
        static float* s_bBuf;
        static long s_bHalf;
        static int s_chunk;
        static int[] s_tickets = new int[64 * TicketStride];
        static int s_batch;
        static long s_strideA, s_strideB, s_strideC;

        sealed class Worker
        {
            public readonly ManualResetEventSlim Go = new(false, 1000);
            public readonly Workspace Ws = new();
            public readonly int Tid;
            public readonly Thread Thread;

            public Worker(int tid)
            {
                Tid = tid;
                Thread = new Thread(Loop) { IsBackground = true, Name = $"TensorLite.Gemm.{tid}" };
                Thread.Start();
            }

            void Loop()
            {
                while (true)
                {
                    Go.Wait();
                    Go.Reset();
                    Interlocked.Increment(ref s_active);
                    if (Volatile.Read(ref s_open) == 1)
                    {
                        if (Prof) Interlocked.Increment(ref ProfT[4]);
                        try { Execute(Ws); }
                        catch (Exception e) { s_error = e; }
                    }
                    Interlocked.Decrement(ref s_active);
                }
            }
        }

        static void EnsureWorkers(int threads)
        {
            if (s_workers.Length >= threads - 1) return;
            var w = new Worker[threads - 1];
            Array.Copy(s_workers, w, s_workers.Length);
            for (int i = s_workers.Length; i < w.Length; i++)
            {
                w[i] = new Worker(i + 1);
                try { w[i].Thread.Priority = s_helperPriority; } catch (ThreadStateException) { }
            }
            s_workers = w;
        }

        public static void Run(in Args g, int threads, Mode mode, Workspace callerWs)
        {
            s_args = g;
            s_mode = mode;
            int slots;
            if (mode == Mode.SplitM)
            {
                s_bBuf = callerWs.EnsureB(BBufferFloats(in g, out long half));
                s_bHalf = half;
                s_chunk = ChunkRowsFor(g.M, threads);
                slots = 4 * ((g.N + NcFor(g.K) - 1) / NcFor(g.K));
            }
            else
            {
                int np = (g.N + NR - 1) / NR;
                s_chunk = Math.Clamp((np + 4 * threads - 1) / (4 * threads), 1, 8); // panels per group
                slots = 1;
            }
            PrepareTickets(slots);
            Launch(threads, callerWs);
        }

        public static void RunBatched(in Args g, int batch, long strideA, long strideB, long strideC, int threads)
        {
            s_args = g;
            s_batch = batch;
            s_strideA = strideA; s_strideB = strideB; s_strideC = strideC;
            s_mode = Mode.Batched;
            PrepareTickets(1);
            Launch(threads, Workspace.Current);
        }

        static void PrepareTickets(int slots)
        {
            if (s_tickets.Length < slots * TicketStride) s_tickets = new int[slots * TicketStride];
            else Array.Clear(s_tickets, 0, slots * TicketStride);
        }

        static ThreadPriority s_helperPriority = ThreadPriority.Normal;

        static void Launch(int threads, Workspace callerWs)
        {
            EnsureWorkers(threads);
            // Helpers work on the caller's behalf: give them its priority (a caller running at raised
            // priority, e.g. under BenchmarkDotNet, would otherwise starve them on a busy machine).
            var prio = Thread.CurrentThread.Priority;
            if (prio != s_helperPriority)
            {
                try { foreach (var w in s_workers) w.Thread.Priority = prio; }
                catch (ThreadStateException) { }
                s_helperPriority = prio;
            }
            if (Prof) Interlocked.Increment(ref ProfT[5]);
            s_error = null;
            Interlocked.Exchange(ref s_open, 1);
            for (int t = 1; t < threads; t++) s_workers[t - 1].Go.Set();
            Exception? mine = null;
            try { Execute(callerWs); }
            catch (Exception e) { mine = e; }
            // No tickets left: close the job, then wait for helpers that joined to finish their items.
            Interlocked.Exchange(ref s_open, 0);
            var sw = new SpinWait();
            while (Volatile.Read(ref s_active) != 0) sw.SpinOnce(sleep1Threshold: -1);
            if (mine != null || s_error != null) throw new InvalidOperationException("GEMM worker failed.", mine ?? s_error);
        }

        static void Execute(Workspace ws)
        {
            switch (s_mode)
            {
                case Mode.SplitM:
                    BlockedSplitM(in s_args, s_bBuf, s_bHalf, ws.EnsureA((long)MC * KC), ws.Tile, s_tickets, s_chunk);
                    break;
                case Mode.SplitN:
                    BlockedSplitN(in s_args, ws.EnsureB((long)KC * NR * s_chunk),
                        ws.EnsureA((long)RoundUp(s_args.M, MR) * KC), ws.Tile, s_tickets, s_chunk);
                    break;
                default:
                    for (int i; (i = Interlocked.Increment(ref s_tickets[0]) - 1) < s_batch;)
                    {
                        var gi = s_args;
                        gi.A = Advance(gi.A, gi.AType, i * s_strideA);
                        gi.B = Advance(gi.B, gi.BType, i * s_strideB);
                        gi.C += i * s_strideC;
                        CpuGemm.Run(in gi, ws, allowParallel: false);
                    }
                    break;
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Micro-kernels (C tile = alpha·Σ_p a[p]·b[p] (+ beta·C when readC)); b must be 64-byte aligned.
    // ---------------------------------------------------------------------------------------------

    /// <summary>12x32 register tile: 24 Vector512 accumulators, A panel k-major (12 floats per k), B panel k-major (32 floats per k).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static void Kernel12x32(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta, bool readC)
    {
        if (readC && Sse.IsSupported)
        {
            // pull the C tile towards L1 while the k loop runs (it is only touched at the end)
            for (int r = 0; r < 12; r++) { Sse.Prefetch0(c + r * ldc); Sse.Prefetch0(c + r * ldc + 16); }
        }
        Vector512<float> c0_0 = default, c0_1 = default, c1_0 = default, c1_1 = default, c2_0 = default, c2_1 = default, c3_0 = default, c3_1 = default, c4_0 = default, c4_1 = default, c5_0 = default, c5_1 = default, c6_0 = default, c6_1 = default, c7_0 = default, c7_1 = default, c8_0 = default, c8_1 = default, c9_0 = default, c9_1 = default, c10_0 = default, c10_1 = default, c11_0 = default, c11_1 = default;
        Vector512<float> b0, b1, x;
        for (int p = 0; p < kc; p++)
        {
            b0 = Vector512.LoadAligned(b + 0);
            b1 = Vector512.LoadAligned(b + 16);
            x = Vector512.Create(a[0]); c0_0 = Vector512.FusedMultiplyAdd(x, b0, c0_0); c0_1 = Vector512.FusedMultiplyAdd(x, b1, c0_1);
            x = Vector512.Create(a[1]); c1_0 = Vector512.FusedMultiplyAdd(x, b0, c1_0); c1_1 = Vector512.FusedMultiplyAdd(x, b1, c1_1);
            x = Vector512.Create(a[2]); c2_0 = Vector512.FusedMultiplyAdd(x, b0, c2_0); c2_1 = Vector512.FusedMultiplyAdd(x, b1, c2_1);
            x = Vector512.Create(a[3]); c3_0 = Vector512.FusedMultiplyAdd(x, b0, c3_0); c3_1 = Vector512.FusedMultiplyAdd(x, b1, c3_1);
            x = Vector512.Create(a[4]); c4_0 = Vector512.FusedMultiplyAdd(x, b0, c4_0); c4_1 = Vector512.FusedMultiplyAdd(x, b1, c4_1);
            x = Vector512.Create(a[5]); c5_0 = Vector512.FusedMultiplyAdd(x, b0, c5_0); c5_1 = Vector512.FusedMultiplyAdd(x, b1, c5_1);
            x = Vector512.Create(a[6]); c6_0 = Vector512.FusedMultiplyAdd(x, b0, c6_0); c6_1 = Vector512.FusedMultiplyAdd(x, b1, c6_1);
            x = Vector512.Create(a[7]); c7_0 = Vector512.FusedMultiplyAdd(x, b0, c7_0); c7_1 = Vector512.FusedMultiplyAdd(x, b1, c7_1);
            x = Vector512.Create(a[8]); c8_0 = Vector512.FusedMultiplyAdd(x, b0, c8_0); c8_1 = Vector512.FusedMultiplyAdd(x, b1, c8_1);
            x = Vector512.Create(a[9]); c9_0 = Vector512.FusedMultiplyAdd(x, b0, c9_0); c9_1 = Vector512.FusedMultiplyAdd(x, b1, c9_1);
            x = Vector512.Create(a[10]); c10_0 = Vector512.FusedMultiplyAdd(x, b0, c10_0); c10_1 = Vector512.FusedMultiplyAdd(x, b1, c10_1);
            x = Vector512.Create(a[11]); c11_0 = Vector512.FusedMultiplyAdd(x, b0, c11_0); c11_1 = Vector512.FusedMultiplyAdd(x, b1, c11_1);
            a += 12; b += 32;
        }
        var va = Vector512.Create(alpha);
        if (readC)
        {
            var vb = Vector512.Create(beta);
            Vector512.Store(Vector512.FusedMultiplyAdd(c0_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c0_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c1_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c1_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c2_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c2_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c3_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c3_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c4_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c4_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c5_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c5_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c6_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c6_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c7_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c7_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c8_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c8_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c9_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c9_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c10_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c10_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
            Vector512.Store(Vector512.FusedMultiplyAdd(c11_0, va, Vector512.Load(c + 0) * vb), c + 0); Vector512.Store(Vector512.FusedMultiplyAdd(c11_1, va, Vector512.Load(c + 16) * vb), c + 16); c += ldc;
        }
        else
        {
            Vector512.Store(c0_0 * va, c + 0); Vector512.Store(c0_1 * va, c + 16); c += ldc;
            Vector512.Store(c1_0 * va, c + 0); Vector512.Store(c1_1 * va, c + 16); c += ldc;
            Vector512.Store(c2_0 * va, c + 0); Vector512.Store(c2_1 * va, c + 16); c += ldc;
            Vector512.Store(c3_0 * va, c + 0); Vector512.Store(c3_1 * va, c + 16); c += ldc;
            Vector512.Store(c4_0 * va, c + 0); Vector512.Store(c4_1 * va, c + 16); c += ldc;
            Vector512.Store(c5_0 * va, c + 0); Vector512.Store(c5_1 * va, c + 16); c += ldc;
            Vector512.Store(c6_0 * va, c + 0); Vector512.Store(c6_1 * va, c + 16); c += ldc;
            Vector512.Store(c7_0 * va, c + 0); Vector512.Store(c7_1 * va, c + 16); c += ldc;
            Vector512.Store(c8_0 * va, c + 0); Vector512.Store(c8_1 * va, c + 16); c += ldc;
            Vector512.Store(c9_0 * va, c + 0); Vector512.Store(c9_1 * va, c + 16); c += ldc;
            Vector512.Store(c10_0 * va, c + 0); Vector512.Store(c10_1 * va, c + 16); c += ldc;
            Vector512.Store(c11_0 * va, c + 0); Vector512.Store(c11_1 * va, c + 16); c += ldc;
        }
    }

    /// <summary>6x16 register tile: 12 Vector256 accumulators, A panel k-major (6 floats per k), B panel k-major (16 floats per k).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static void Kernel6x16(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta, bool readC)
    {
        Vector256<float> c0_0 = default, c0_1 = default, c1_0 = default, c1_1 = default, c2_0 = default, c2_1 = default, c3_0 = default, c3_1 = default, c4_0 = default, c4_1 = default, c5_0 = default, c5_1 = default;
        Vector256<float> b0, b1, x;
        for (int p = 0; p < kc; p++)
        {
            b0 = Vector256.LoadAligned(b + 0);
            b1 = Vector256.LoadAligned(b + 8);
            x = Vector256.Create(a[0]); c0_0 = Vector256.FusedMultiplyAdd(x, b0, c0_0); c0_1 = Vector256.FusedMultiplyAdd(x, b1, c0_1);
            x = Vector256.Create(a[1]); c1_0 = Vector256.FusedMultiplyAdd(x, b0, c1_0); c1_1 = Vector256.FusedMultiplyAdd(x, b1, c1_1);
            x = Vector256.Create(a[2]); c2_0 = Vector256.FusedMultiplyAdd(x, b0, c2_0); c2_1 = Vector256.FusedMultiplyAdd(x, b1, c2_1);
            x = Vector256.Create(a[3]); c3_0 = Vector256.FusedMultiplyAdd(x, b0, c3_0); c3_1 = Vector256.FusedMultiplyAdd(x, b1, c3_1);
            x = Vector256.Create(a[4]); c4_0 = Vector256.FusedMultiplyAdd(x, b0, c4_0); c4_1 = Vector256.FusedMultiplyAdd(x, b1, c4_1);
            x = Vector256.Create(a[5]); c5_0 = Vector256.FusedMultiplyAdd(x, b0, c5_0); c5_1 = Vector256.FusedMultiplyAdd(x, b1, c5_1);
            a += 6; b += 16;
        }
        var va = Vector256.Create(alpha);
        if (readC)
        {
            var vb = Vector256.Create(beta);
            Vector256.Store(Vector256.FusedMultiplyAdd(c0_0, va, Vector256.Load(c + 0) * vb), c + 0); Vector256.Store(Vector256.FusedMultiplyAdd(c0_1, va, Vector256.Load(c + 8) * vb), c + 8); c += ldc;
            Vector256.Store(Vector256.FusedMultiplyAdd(c1_0, va, Vector256.Load(c + 0) * vb), c + 0); Vector256.Store(Vector256.FusedMultiplyAdd(c1_1, va, Vector256.Load(c + 8) * vb), c + 8); c += ldc;
            Vector256.Store(Vector256.FusedMultiplyAdd(c2_0, va, Vector256.Load(c + 0) * vb), c + 0); Vector256.Store(Vector256.FusedMultiplyAdd(c2_1, va, Vector256.Load(c + 8) * vb), c + 8); c += ldc;
            Vector256.Store(Vector256.FusedMultiplyAdd(c3_0, va, Vector256.Load(c + 0) * vb), c + 0); Vector256.Store(Vector256.FusedMultiplyAdd(c3_1, va, Vector256.Load(c + 8) * vb), c + 8); c += ldc;
            Vector256.Store(Vector256.FusedMultiplyAdd(c4_0, va, Vector256.Load(c + 0) * vb), c + 0); Vector256.Store(Vector256.FusedMultiplyAdd(c4_1, va, Vector256.Load(c + 8) * vb), c + 8); c += ldc;
            Vector256.Store(Vector256.FusedMultiplyAdd(c5_0, va, Vector256.Load(c + 0) * vb), c + 0); Vector256.Store(Vector256.FusedMultiplyAdd(c5_1, va, Vector256.Load(c + 8) * vb), c + 8); c += ldc;
        }
        else
        {
            Vector256.Store(c0_0 * va, c + 0); Vector256.Store(c0_1 * va, c + 8); c += ldc;
            Vector256.Store(c1_0 * va, c + 0); Vector256.Store(c1_1 * va, c + 8); c += ldc;
            Vector256.Store(c2_0 * va, c + 0); Vector256.Store(c2_1 * va, c + 8); c += ldc;
            Vector256.Store(c3_0 * va, c + 0); Vector256.Store(c3_1 * va, c + 8); c += ldc;
            Vector256.Store(c4_0 * va, c + 0); Vector256.Store(c4_1 * va, c + 8); c += ldc;
            Vector256.Store(c5_0 * va, c + 0); Vector256.Store(c5_1 * va, c + 8); c += ldc;
        }
    }

}
