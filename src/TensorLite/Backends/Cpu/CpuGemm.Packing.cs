using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TensorLite.Backends.Cpu;

// Packing of op(A) and op(B) into the k-major micro-panels the micro-kernels read (float32, and bfloat16/float16
// widened through a per-thread staging block), with the AVX-512 16×16 transposes for transposed operands.
public static unsafe partial class CpuGemm
{
    /// <summary>
    /// Packs rows [i0, i0+mb) × cols [p0, p0+kb) of op(A) into MR-row micro-panels: panel r holds
    /// element (i0 + r·MR + ii, p0 + p) at offset r·APanelStride(kb) + p·MR + ii; rows past mb are zero.
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
            int full = mb / mr, rest = mb - full * mr, stride = APanelStride(kb);
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
                    for (; ip < full; ip++, s += 12, dp += stride)
                    {
                        Vector256.Store(Vector256.Load(s), dp);
                        Vector128.Store(Vector128.Load(s + 8), dp + 8);
                    }
                }
                else if (mr == 6)
                {
                    for (; ip < full; ip++, s += 6, dp += stride)
                    {
                        Vector128.Store(Vector128.Load(s), dp);
                        StoreTwo(Vector128.CreateScalarUnsafe(*(double*)(s + 4)).AsSingle(), dp + 4);
                    }
                }
                else
                {
                    for (; ip < full; ip++, s += mr, dp += stride)
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
            float* d = dst + (long)(ir / mr) * APanelStride(kb);
            // op(A)[i, p] = A[i·lda + p]
            float* src = g.A + (long)(i0 + ir) * g.Lda + p0;
            if (rows == 12 && mr == 12)
            {
                PackA12Rows(src, g.Lda, kb, d);
                continue;
            }
            if (rows == 6 && mr == 6 && Avx.IsSupported)
            {
                PackA6Rows(src, g.Lda, kb, d);
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
            if (Avx.IsSupported && nr == 16 && cols == 16)
            {
                PackBT16Cols(src, g.Ldb, kb, dst);
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
        f.Lda = g.TransA
            ? WidenRuns((ushort*)g.A, g.AType, g.Lda, p0, kb, i0, mb, stage)  // stored k×m: rows p0.., runs of mb from column i0
            : WidenRuns((ushort*)g.A, g.AType, g.Lda, i0, mb, p0, kb, stage);
        PackA(in f, 0, mb, 0, kb, dst);
    }

    /// <summary>Packing of a bfloat16/float16 op(B) micro-panel through a widened staging block (see <see cref="PackAHalf"/>).</summary>
    static void PackBHalf(in Args g, int p0, int kb, int j0, int cols, float* dst)
    {
        float* stage = Staging.Ensure((long)cols * kb);
        var f = g;
        f.BType = DType.Float32;
        f.B = stage;
        f.Ldb = g.TransB
            ? WidenRuns((ushort*)g.B, g.BType, g.Ldb, j0, cols, p0, kb, stage)  // stored n×k: rows j0.., runs of kb from column p0
            : WidenRuns((ushort*)g.B, g.BType, g.Ldb, p0, kb, j0, cols, stage);
        PackB(in f, 0, kb, 0, cols, dst);
    }

    /// <summary>Widens <paramref name="rows"/> stored rows (from <paramref name="row0"/>, leading dimension
    /// <paramref name="ld"/>), each a run of <paramref name="run"/> half elements from column <paramref name="col0"/>, into
    /// consecutive float32 rows of <paramref name="stage"/>; returns the staging block's leading dimension.</summary>
    static int WidenRuns(ushort* src, DType type, int ld, int row0, int rows, int col0, int run, float* stage)
    {
        for (int r = 0; r < rows; r++) HalfKernels.Widen(src + (long)(row0 + r) * ld + col0, type, stage + (long)r * run, run);
        return Math.Max(1, run);
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
}
