using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;

namespace TensorLite.Ilgpu;

/// <summary>Sizes and scale of one causal-attention launch (q: [B, H, T, D]; k, v: [B, Hkv, T, D], contiguous).</summary>
public struct AttentionParams
{
    public int Heads, KvHeads, Seq, HeadDim;
    /// <summary>Rows per tile, for query and key tiles alike (a group is Tile × Tile threads).</summary>
    public int Tile;
    /// <summary>Tiles along the sequence: ⌈Seq / Tile⌉.</summary>
    public int SeqTiles;
    public float Scale;
}

// Causal attention, flash-attention style: the [T, T] scores are never stored; each group works on one tile of
// Tile query rows (forward, dq) or Tile key rows (dk, dv) and walks the tiles of the other side that the causal
// mask lets it see, staging them in shared memory.
//
// Threads: a group is Tile × Tile (Group.IdxY = the row this thread's output belongs to, Group.IdxX = the partner
// row on the other side while scores are formed, then the output columns it owns: c0 + X, c0 + X + Tile, ...).
// Output rows are accumulated in registers: at most AttentionColumnsPerThread columns per thread, held as the named
// fields of AttentionColumns (a dynamically indexed per-thread array would live in local memory), so shared memory
// only holds staged input tiles and the Tile × Tile score tiles. A group owns one block of 8·Tile output columns,
// c0 = Grid.IdxY · 8·Tile: one block covers the head dim for Tile 16 and D ≤ 128 (the CUDA default); for larger
// head dims or smaller tiles the grid's y dimension has ⌈D / 8·Tile⌉ blocks, each recomputing the scores.
//
// Shared memory: every staged tile buffer has the same fixed size, AttentionTileFloats = 16 × 129 floats, with rows
// padded to D + 1 floats (odd for the usual even D, so the threads of a warp that read row X at the same column hit
// different banks). The host picks Tile = 16 for D ≤ 128 and Tile = 8 for 128 < D ≤ 256 so the tile fits (or any
// smaller tile it is told to); at most four buffers plus the score tiles stay under 36 KB, below the 48 KB of static
// shared memory a CUDA block may use.
//
// Causality: tiles are aligned on both sides (same Tile), so a query tile only visits key tiles up to its own index
// and a key tile only query tiles from its own index on; inside the diagonal tile, key > query is masked per
// element. Every barrier sits in control flow that is uniform across the group (loop bounds depend on the block
// only), so the code runs the same on CUDA and on the CPU accelerator.
//
// Backward recomputes P = exp(scale·q·kᵀ − lse) from the forward's log-sum-exp; dq (per query tile) and dk, dv
// (per key tile, summing over the query heads of the kv head's group) are separate kernels that each own their
// outputs, so there are no atomics and the results are deterministic.
public static partial class IlgpuKernels
{
    /// <summary>The largest head dimension the attention kernels take.</summary>
    public const int AttentionMaxHeadDim = 256;

    /// <summary>Floats in one staged tile buffer: 16 rows of D ≤ 128 or 8 rows of D ≤ 256, each padded by one.</summary>
    public const int AttentionTileFloats = 16 * (128 + 1);

    private const int AttentionMaxTile = 16;

    /// <summary>Output columns one thread accumulates (in registers); a group covers 8·Tile columns of the head dim.</summary>
    public const int AttentionColumnsPerThread = 8;

    /// <summary>Rows per tile for head dimension <paramref name="headDim"/> (≤ <see cref="AttentionMaxHeadDim"/>).</summary>
    public static int AttentionTile(int headDim) => headDim <= 128 ? AttentionMaxTile : 8;

    /// <summary>Whether tiles of <paramref name="tile"/> rows fit the kernels' fixed buffers for this head dim: the
    /// score tiles and a staged tile of padded rows.</summary>
    public static bool AttentionTileFits(int tile, int headDim) =>
        tile >= 1 && tile <= AttentionMaxTile && tile * (headDim + 1) <= AttentionTileFloats;

    /// <summary>Blocks of 8·<paramref name="tile"/> output columns over the head dim (the grid's y dimension); at least
    /// one, so that head dim 0 still writes lse.</summary>
    public static int AttentionColumnBlocks(int tile, int headDim)
    {
        int width = AttentionColumnsPerThread * tile;
        return Math.Max(1, (headDim + width - 1) / width);
    }

    /// <summary>The output columns of this thread in its group's column block (grid y): the first, and how many of
    /// first, first + tile, ... lie inside both the block and the head dim.</summary>
    private static int ThreadColumns(int tile, int d, int x, out int first)
    {
        int c0 = Grid.IdxY * AttentionColumnsPerThread * tile;
        int end = XMath.Min(d, c0 + AttentionColumnsPerThread * tile);
        first = c0 + x;
        return first < end ? (end - first + tile - 1) / tile : 0;
    }

    /// <summary>Copies rows [row0, row0 + tile) of one head ([seq, d] at headBase) into a padded tile (stride d + 1),
    /// zeros past the end of the sequence. Consecutive threads read consecutive floats.</summary>
    private static void StageRows(ArrayView<float> src, long headBase, int row0, int seq, int d, int tile,
        ArrayView<float> dst, int tid, int threads)
    {
        int ld = d + 1;
        for (int e = tid; e < tile * d; e += threads)
        {
            int r = e / d, c = e - r * d;
            int row = row0 + r;
            dst[r * ld + c] = row < seq ? src[headBase + (long)row * d + c] : 0f;
        }
    }

    /// <summary>Dot product of two rows of length d stored in shared tiles.</summary>
    private static float RowDot(ArrayView<float> a, int aStart, ArrayView<float> b, int bStart, int d)
    {
        float acc = 0f;
        for (int c = 0; c < d; c++) acc += a[aStart + c] * b[bStart + c];
        return acc;
    }

    /// <summary>The query tile a group of the forward and dq kernels works on (grid x = B·H·SeqTiles): its (batch, head)
    /// index, first query row, and where its head's q rows and — through grouped-query attention — its kv head's k and
    /// v rows start.</summary>
    private readonly struct QueryTileOfGroup
    {
        public readonly int BatchHead, Q0;
        public readonly long QBase, KvBase;

        public QueryTileOfGroup(AttentionParams p)
        {
            BatchHead = Grid.IdxX / p.SeqTiles;
            Q0 = (Grid.IdxX - BatchHead * p.SeqTiles) * p.Tile;
            int b = BatchHead / p.Heads, kvHead = (BatchHead - b * p.Heads) / (p.Heads / p.KvHeads);
            QBase = (long)BatchHead * p.Seq * p.HeadDim;
            KvBase = ((long)b * p.KvHeads + kvHead) * p.Seq * p.HeadDim;
        }
    }

    /// <summary>
    /// Forward: one group per (batch, head, query tile) and column block, grid = (B·H·SeqTiles,
    /// <see cref="AttentionColumnBlocks"/>) groups of Tile × Tile. Online softmax:
    /// each row keeps its running max m and sum l (every thread of the row holds the same copy), rescaling its
    /// output accumulator whenever m grows. Writes o = Σ softmax·v and lse = m + log l.
    /// </summary>
    public static void AttentionForward(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> o, ArrayView<float> lse, AttentionParams p)
    {
        var qTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var kTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var vTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var scores = SharedMemory.Allocate<float>(AttentionMaxTile * AttentionMaxTile);

        int tile = p.Tile, d = p.HeadDim, ld = d + 1, seq = p.Seq;
        int x = Group.IdxX, y = Group.IdxY, tid = y * tile + x, threads = tile * tile;
        var at = new QueryTileOfGroup(p);
        int bh = at.BatchHead, q0 = at.Q0, query = q0 + y;
        long qBase = at.QBase, kvBase = at.KvBase;
        bool rowValid = query < seq;

        int columns = ThreadColumns(tile, d, x, out int first);

        StageRows(q, qBase, q0, seq, d, tile, qTile, tid, threads);   // the loop's barriers publish it
        var acc = new AttentionColumns();
        float m = float.NegativeInfinity, l = 0f;

        int keyEnd = XMath.Min(seq, q0 + tile);   // later keys are above the diagonal for every row of the tile
        for (int k0 = 0; k0 < keyEnd; k0 += tile)
        {
            Group.Barrier();   // the previous step's readers of kTile, vTile and scores are done
            StageRows(k, kvBase, k0, seq, d, tile, kTile, tid, threads);
            StageRows(v, kvBase, k0, seq, d, tile, vTile, tid, threads);
            Group.Barrier();

            int key = k0 + x;
            float s = float.NegativeInfinity;
            if (rowValid && key <= query) s = p.Scale * RowDot(qTile, y * ld, kTile, x * ld, d);
            scores[y * tile + x] = s;
            Group.Barrier();

            // Every thread of a row derives the row's statistics and probabilities itself (Tile exps each) rather
            // than sharing them through shared memory, which would cost another barrier per step; each probability
            // is used as soon as it is known, so none is stored. A valid row sees key k0 ≤ q0 ≤ query in every
            // visited tile, so its tile max is finite; rows past the end of the sequence keep zeros (and are never
            // written).
            float tileMax = float.NegativeInfinity;
            for (int j = 0; j < tile; j++) tileMax = XMath.Max(tileMax, scores[y * tile + j]);
            float mNew = XMath.Max(m, tileMax);
            float rescale = rowValid ? XMath.Exp(m - mNew) : 0f;
            acc.Scale(rescale);
            float rowSum = 0f;
            for (int j = 0; j < tile; j++)
            {
                float pj = rowValid ? XMath.Exp(scores[y * tile + j] - mNew) : 0f;
                rowSum += pj;
                acc.AddScaled(pj, vTile, j * ld + first, tile, columns);
            }
            l = l * rescale + rowSum;
            m = mNew;
        }

        if (rowValid)
        {
            acc.Store(o, qBase + (long)query * d + first, tile, columns, 1f / l);
            if (x == 0 && Grid.IdxY == 0) lse[(long)bh * seq + query] = m + XMath.Log(l);
        }
    }

    /// <summary>dots[row] = Σ_c dO[row, c]·o[row, c] over rows of length d (the D_i term of the softmax
    /// gradient); one thread per row.</summary>
    public static void AttentionRowDots(Index1D row, ArrayView<float> dO, ArrayView<float> o, ArrayView<float> dots, int d)
    {
        long start = (long)row.X * d;
        float acc = 0f;
        for (int c = 0; c < d; c++) acc += dO[start + c] * o[start + c];
        dots[row] = acc;
    }

    /// <summary>
    /// dq for one (batch, head, query tile), grid as <see cref="AttentionForward"/>: for each visible key tile,
    /// dS = P ∘ (dO·vᵀ − dots)·scale with P = exp(scale·q·kᵀ − lse), and dq += dS·k.
    /// </summary>
    public static void AttentionBackwardQuery(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> dO, ArrayView<float> lse, ArrayView<float> dots, ArrayView<float> dq, AttentionParams p)
    {
        var qTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var doTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var kTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var vTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var dS = SharedMemory.Allocate<float>(AttentionMaxTile * AttentionMaxTile);

        int tile = p.Tile, d = p.HeadDim, ld = d + 1, seq = p.Seq;
        int x = Group.IdxX, y = Group.IdxY, tid = y * tile + x, threads = tile * tile;
        var at = new QueryTileOfGroup(p);
        int bh = at.BatchHead, q0 = at.Q0, query = q0 + y;
        long qBase = at.QBase, kvBase = at.KvBase;
        bool rowValid = query < seq;
        float rowLse = rowValid ? lse[(long)bh * seq + query] : 0f;
        float rowDot = rowValid ? dots[(long)bh * seq + query] : 0f;

        int columns = ThreadColumns(tile, d, x, out int first);

        StageRows(q, qBase, q0, seq, d, tile, qTile, tid, threads);
        StageRows(dO, qBase, q0, seq, d, tile, doTile, tid, threads);
        var acc = new AttentionColumns();

        int keyEnd = XMath.Min(seq, q0 + tile);
        for (int k0 = 0; k0 < keyEnd; k0 += tile)
        {
            Group.Barrier();
            StageRows(k, kvBase, k0, seq, d, tile, kTile, tid, threads);
            StageRows(v, kvBase, k0, seq, d, tile, vTile, tid, threads);
            Group.Barrier();

            int key = k0 + x;
            float ds = 0f;
            if (rowValid && key <= query)
            {
                float prob = XMath.Exp(p.Scale * RowDot(qTile, y * ld, kTile, x * ld, d) - rowLse);
                float dp = RowDot(doTile, y * ld, vTile, x * ld, d);
                ds = prob * (dp - rowDot) * p.Scale;
            }
            dS[y * tile + x] = ds;
            Group.Barrier();

            for (int j = 0; j < tile; j++) acc.AddScaled(dS[y * tile + j], kTile, j * ld + first, tile, columns);
        }

        if (rowValid) acc.Store(dq, qBase + (long)query * d + first, tile, columns, 1f);
    }

    /// <summary>
    /// dk and dv for one (batch, kv head, key tile) and column block, grid = (B·Hkv·SeqTiles,
    /// <see cref="AttentionColumnBlocks"/>) groups of Tile × Tile: over every query
    /// head of the kv head's group and every query tile from the diagonal on, dv += Pᵀ·dO and dk += dSᵀ·q.
    /// Group.IdxY is the key row; Group.IdxX the query row while P and dS are formed, then the output column.
    /// </summary>
    public static void AttentionBackwardKeyValue(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> dO, ArrayView<float> lse, ArrayView<float> dots, ArrayView<float> dk, ArrayView<float> dv,
        AttentionParams p)
    {
        var kTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var vTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var qTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var doTile = SharedMemory.Allocate<float>(AttentionTileFloats);
        var probs = SharedMemory.Allocate<float>(AttentionMaxTile * AttentionMaxTile);
        var dS = SharedMemory.Allocate<float>(AttentionMaxTile * AttentionMaxTile);

        int tile = p.Tile, d = p.HeadDim, ld = d + 1, seq = p.Seq;
        int x = Group.IdxX, y = Group.IdxY, tid = y * tile + x, threads = tile * tile;
        int bkv = Grid.IdxX / p.SeqTiles, k0 = (Grid.IdxX - bkv * p.SeqTiles) * tile;
        int b = bkv / p.KvHeads, kvHead = bkv - b * p.KvHeads, group = p.Heads / p.KvHeads;
        long kvBase = (long)bkv * seq * d;
        int key = k0 + y;
        bool keyValid = key < seq;

        int columns = ThreadColumns(tile, d, x, out int first);

        StageRows(k, kvBase, k0, seq, d, tile, kTile, tid, threads);
        StageRows(v, kvBase, k0, seq, d, tile, vTile, tid, threads);
        var dkAcc = new AttentionColumns();
        var dvAcc = new AttentionColumns();

        for (int h = kvHead * group; h < (kvHead + 1) * group; h++)
        {
            long bh = (long)b * p.Heads + h, qBase = bh * seq * d;
            for (int q0 = k0; q0 < seq; q0 += tile)   // earlier query tiles see none of these keys
            {
                Group.Barrier();   // the previous step's readers of qTile, doTile, probs and dS are done
                StageRows(q, qBase, q0, seq, d, tile, qTile, tid, threads);
                StageRows(dO, qBase, q0, seq, d, tile, doTile, tid, threads);
                Group.Barrier();

                int query = q0 + x;
                float prob = 0f, ds = 0f;
                if (keyValid && query < seq && key <= query)
                {
                    long r = bh * seq + query;
                    prob = XMath.Exp(p.Scale * RowDot(qTile, x * ld, kTile, y * ld, d) - lse[r]);
                    float dp = RowDot(doTile, x * ld, vTile, y * ld, d);
                    ds = prob * (dp - dots[r]) * p.Scale;
                }
                probs[y * tile + x] = prob;
                dS[y * tile + x] = ds;
                Group.Barrier();

                for (int j = 0; j < tile; j++)
                {
                    dvAcc.AddScaled(probs[y * tile + j], doTile, j * ld + first, tile, columns);
                    dkAcc.AddScaled(dS[y * tile + j], qTile, j * ld + first, tile, columns);
                }
            }
        }

        if (keyValid)
        {
            long row = kvBase + (long)key * d + first;
            dkAcc.Store(dk, row, tile, columns, 1f);
            dvAcc.Store(dv, row, tile, columns, 1f);
        }
    }

    /// <summary>
    /// The output columns one thread accumulates: columns first, first + tile, ... (at most
    /// <see cref="AttentionColumnsPerThread"/>) as named fields, so that every access has a constant index and ptxas
    /// keeps them in registers. The callers pass how many of them exist (<c>count</c>); the others stay zero and are
    /// never stored.
    /// </summary>
    private struct AttentionColumns
    {
        public float C0, C1, C2, C3, C4, C5, C6, C7;

        public void Scale(float s)
        {
            C0 *= s; C1 *= s; C2 *= s; C3 *= s; C4 *= s; C5 *= s; C6 *= s; C7 *= s;
        }

        /// <summary>Column i += weight · rows[start + i·stride], for i &lt; count.</summary>
        public void AddScaled(float weight, ArrayView<float> rows, int start, int stride, int count)
        {
            if (count > 0) C0 += weight * rows[start];
            if (count > 1) C1 += weight * rows[start + stride];
            if (count > 2) C2 += weight * rows[start + 2 * stride];
            if (count > 3) C3 += weight * rows[start + 3 * stride];
            if (count > 4) C4 += weight * rows[start + 4 * stride];
            if (count > 5) C5 += weight * rows[start + 5 * stride];
            if (count > 6) C6 += weight * rows[start + 6 * stride];
            if (count > 7) C7 += weight * rows[start + 7 * stride];
        }

        /// <summary>destination[start + i·stride] = scale · column i, for i &lt; count.</summary>
        public readonly void Store(ArrayView<float> destination, long start, int stride, int count, float scale)
        {
            if (count > 0) destination[start] = C0 * scale;
            if (count > 1) destination[start + stride] = C1 * scale;
            if (count > 2) destination[start + 2 * stride] = C2 * scale;
            if (count > 3) destination[start + 3 * stride] = C3 * scale;
            if (count > 4) destination[start + 4 * stride] = C4 * scale;
            if (count > 5) destination[start + 5 * stride] = C5 * scale;
            if (count > 6) destination[start + 6 * stride] = C6 * scale;
            if (count > 7) destination[start + 7 * stride] = C7 * scale;
        }
    }

    /// <summary>The attention kernels for <see cref="All"/>.</summary>
    private static IEnumerable<(MethodInfo, bool)> AttentionKernels()
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.Static;
        MethodInfo M(string name) => typeof(IlgpuKernels).GetMethod(name, flags)!;
        foreach (var name in new[] { nameof(AttentionForward), nameof(AttentionBackwardQuery), nameof(AttentionBackwardKeyValue) })
            yield return (M(name), true);
        yield return (M(nameof(AttentionRowDots)), false);
    }
}
