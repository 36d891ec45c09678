namespace TensorLite.Backends.Cpu;

// The blocked driver's packing and micro-kernel, one micro-panel at a time, for callers that reuse a packed operand
// many times and choose which tiles to compute: the CPU attention kernel packs each key/value head once for all of
// its query rows and skips the tiles above the causal diagonal. The arithmetic is the driver's (same kernel, same
// k order and slices, same edge-tile merge), so a tile computed here rounds exactly as the same tile of the same
// product through Sgemm.
public static unsafe partial class CpuGemm
{
    /// <summary>Rows of one packed op(A) micro-panel (the micro-kernel's tile height).</summary>
    internal static int PanelRows => MR;

    /// <summary>Columns of one packed op(B) micro-panel (the micro-kernel's tile width).</summary>
    internal static int PanelColumns => NR;

    /// <summary>
    /// Packs op(A) rows [0, rows) × columns [0, k) (A stored m×k, or k×m when <paramref name="transA"/>) into
    /// ⌈rows/MR⌉ k-major micro-panels <see cref="APanelStride"/>(k) floats apart; rows past <paramref name="rows"/>
    /// are zero.
    /// </summary>
    internal static void PackAPanels(bool transA, int rows, int k, float* a, int lda, float* dst)
    {
        var g = new Args { TransA = transA, M = rows, K = k, A = a, Lda = lda };
        PackA(in g, 0, rows, 0, k, dst);
    }

    /// <summary>
    /// Packs op(B) rows [0, k) × columns [0, cols) (B stored k×n, or n×k when <paramref name="transB"/>) into
    /// ⌈cols/NR⌉ k-major micro-panels k·NR floats apart (dst 64-byte aligned); columns past <paramref name="cols"/>
    /// are zero.
    /// </summary>
    internal static void PackBPanels(bool transB, int k, int cols, float* b, int ldb, float* dst)
    {
        var g = new Args { TransB = transB, N = cols, K = k, B = b, Ldb = ldb };
        for (int j = 0; j < cols; j += NR) PackB(in g, 0, k, j, Math.Min(NR, cols - j), dst + (long)j * k);
    }

    /// <summary>
    /// C[rows × cols] = alpha·A·B + beta·C for one packed A micro-panel (rows ≤ MR, depth k ≥ 1) against packed B
    /// micro-panels <paramref name="bPanelStride"/> floats apart (k-major, so a panel of any depth ≥ k serves; the
    /// products use its first k steps). k is summed in the driver's slices (<see cref="SliceDepth"/>).
    /// </summary>
    internal static void MultiplyPanel(int k, float* aPanel, float* bPanels, long bPanelStride, int rows, int cols,
        float alpha, float beta, float* c, int ldc)
    {
        float* tile = Workspace.Current.Tile;
        int kcMax = SliceDepth(k);
        for (int j = 0; j < cols; j += NR)
        {
            float* bp = bPanels + j / NR * bPanelStride, cp = c + j;
            int nCols = Math.Min(NR, cols - j);
            for (int pc = 0; pc < k; pc += kcMax)
            {
                int kb = Math.Min(kcMax, k - pc);
                float sliceBeta = pc == 0 ? beta : 1f;
                bool readC = pc != 0 || beta != 0f;
                if (rows == MR && nCols == NR)
                {
                    Kernel(kb, aPanel + pc * MR, bp + pc * NR, cp, ldc, alpha, sliceBeta, readC);
                }
                else
                {
                    Kernel(kb, aPanel + pc * MR, bp + pc * NR, tile, NR, 1f, 0f, false);
                    MergeTile(tile, NR, cp, ldc, rows, nCols, alpha, sliceBeta, readC);
                }
            }
        }
    }
}
