using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

// The batched GEMM member over CpuGemm's packed kernels (float32 output), with a staged path for half-precision output.
internal sealed unsafe partial class CpuBackend
{

    public void MatMul(Tensor a, Tensor b, Tensor c, float alpha, float beta)
    {
        long started = MatMulClock.Start();
        MatMulCore(a, b, c, alpha, beta);
        MatMulClock.Stop(started, 2L * c.Numel * a.Shape[^1]);
    }

    private void MatMulCore(Tensor a, Tensor b, Tensor c, float alpha, float beta)
    {
        int rank = c.Rank;
        int m = c.Shape[rank - 2], n = c.Shape[rank - 1], k = a.Shape[rank - 1];
        MatrixLayout.TryGet(m, k, a.Strides[rank - 2], a.Strides[rank - 1], out bool ta, out int lda);
        MatrixLayout.TryGet(k, n, b.Strides[rank - 2], b.Strides[rank - 1], out bool tb, out int ldb);
        int ldc = n;
        byte* ap = BytePtr(a), bp = BytePtr(b), cp = BytePtr(c);
        DType at = a.DType, bt = b.DType, ct = c.DType;
        int sa = at.SizeInBytes(), sb = bt.SizeInBytes(), sc = ct.SizeInBytes();
        int batchRank = rank - 2;
        int batch = 1;
        for (int i = 0; i < batchRank; i++) batch *= c.Shape[i];
        if (batch == 1)
        {
            if (ct == DType.Float32) CpuGemm.Gemm(ta, tb, m, n, k, alpha, ap, at, lda, bp, bt, ldb, beta, (float*)cp, ldc);
            else GemmHalfOutput(ta, tb, m, n, k, alpha, ap, at, lda, bp, bt, ldb, beta, (ushort*)cp, ct);
            return;
        }
        // Merge the batch dims into one when every operand steps through them uniformly.
        var batchShape = c.Shape[..batchRank].ToArray();
        var loop = new StridedLoop(batchShape, a.Strides[..batchRank].ToArray(), b.Strides[..batchRank].ToArray(), c.Strides[..batchRank].ToArray());
        for (int row = 0; row < loop.RowCount; row++)
        {
            byte* ar = ap + (long)loop.RowOffset(0, row) * sa, br = bp + (long)loop.RowOffset(1, row) * sb;
            byte* cr = cp + (long)loop.RowOffset(2, row) * sc;
            if (ct == DType.Float32)
            {
                CpuGemm.GemmBatched(ta, tb, loop.RowLength, m, n, k, alpha,
                    ar, at, loop.RowStride(0), lda, br, bt, loop.RowStride(1), ldb, beta, (float*)cr, loop.RowStride(2), ldc);
                continue;
            }
            for (int j = 0; j < loop.RowLength; j++)
                GemmHalfOutput(ta, tb, m, n, k, alpha, ar + (long)j * loop.RowStride(0) * sa, at, lda,
                    br + (long)j * loop.RowStride(1) * sb, bt, ldb, beta, (ushort*)(cr + (long)j * loop.RowStride(2) * sc), ct);
        }
    }

    /// <summary>Bytes of the float32 staging block a half-precision GEMM output is computed in (then rounded).</summary>
    internal const long HalfOutputStagingBytes = 8L << 20;

    /// <summary>
    /// GEMM into a contiguous bfloat16/float16 C (ldc = n): rows are computed in blocks into a float32 staging
    /// buffer of at most <see cref="HalfOutputStagingBytes"/> (all k accumulated in float32) and each result is
    /// rounded to nearest even once. No float32 copy of the whole output ever exists.
    /// </summary>
    private static void GemmHalfOutput(bool ta, bool tb, int m, int n, int k, float alpha, byte* a, DType at, int lda,
        byte* b, DType bt, int ldb, float beta, ushort* c, DType ct)
    {
        if (m == 0 || n == 0) return;
        int mr = CpuGemm.MR;
        int rowsPerBlock = (int)Math.Min(Math.Max(HalfOutputStagingBytes / 4 / n / mr * mr, 4 * mr), m);
        using var staging = Tensor.Empty([rowsPerBlock * n]);
        float* s = Ptr(staging);
        int sa = at.SizeInBytes();
        for (int i0 = 0; i0 < m; i0 += rowsPerBlock)
        {
            int rows = Math.Min(rowsPerBlock, m - i0);
            long count = (long)rows * n;
            ushort* cBlock = c + (long)i0 * n;
            if (beta != 0f) HalfKernels.Widen(cBlock, ct, s, (int)count);
            // op(A) rows i0.. start at A + i0 (transposed: stored k×m) or A + i0·lda
            byte* aBlock = a + (ta ? (long)i0 : (long)i0 * lda) * sa;
            CpuGemm.Gemm(ta, tb, rows, n, k, alpha, aBlock, at, lda, b, bt, ldb, beta, s, n);
            HalfKernels.Narrow(s, cBlock, ct, (int)count);
        }
    }
}
