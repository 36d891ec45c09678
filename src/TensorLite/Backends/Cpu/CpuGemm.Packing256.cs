using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TensorLite.Backends.Cpu;

// Packing helpers for the 6×16 (Vector256) micro-kernel family: AVX 8×8 in-register transposes for
// the operands the kernels read across their stored rows (op(A) not transposed, op(B) transposed).
// Without them those packs copy one float at a time (about 1 float/ns), which at n = 256 costs
// 12–15 % of a GEMM that the micro-kernel would otherwise run at ~95 % of the FMA peak.
public static unsafe partial class CpuGemm
{
    /// <summary>
    /// Transposes a rows×8 block (rows ≤ 8, row stride ld; missing rows read as zero) into 8 columns:
    /// column c (one value per source row) goes to dst + c·dstStride, of which the first
    /// <paramref name="store"/> values (8, or 6 for A micro-panels) are written. Three shuffle stages;
    /// every source row is read with one unaligned load.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Transpose8x8(float* src, nint ld, int rows, float* dst, int dstStride, int store)
    {
        var z = Vector256<float>.Zero;
        var r0 = Vector256.Load(src); var r1 = Vector256.Load(src + ld);
        var r2 = Vector256.Load(src + 2 * ld); var r3 = Vector256.Load(src + 3 * ld);
        var r4 = Vector256.Load(src + 4 * ld); var r5 = Vector256.Load(src + 5 * ld);
        var r6 = rows > 6 ? Vector256.Load(src + 6 * ld) : z;
        var r7 = rows > 7 ? Vector256.Load(src + 7 * ld) : z;

        // stage 1: interleave row pairs within 128-bit lanes
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        // stage 2: u(q) lane l = column (q + 4l) of rows 0..3 (u0..u3) or rows 4..7 (u4..u7)
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        // stage 3: join the rows 0..3 and rows 4..7 halves of each column
        StoreColumn8(Avx.Permute2x128(u0, u4, 0x20), dst, store);
        StoreColumn8(Avx.Permute2x128(u1, u5, 0x20), dst + dstStride, store);
        StoreColumn8(Avx.Permute2x128(u2, u6, 0x20), dst + 2 * dstStride, store);
        StoreColumn8(Avx.Permute2x128(u3, u7, 0x20), dst + 3 * dstStride, store);
        StoreColumn8(Avx.Permute2x128(u0, u4, 0x31), dst + 4 * dstStride, store);
        StoreColumn8(Avx.Permute2x128(u1, u5, 0x31), dst + 5 * dstStride, store);
        StoreColumn8(Avx.Permute2x128(u2, u6, 0x31), dst + 6 * dstStride, store);
        StoreColumn8(Avx.Permute2x128(u3, u7, 0x31), dst + 7 * dstStride, store);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreColumn8(Vector256<float> v, float* dst, int store)
    {
        if (store == 8)
        {
            Vector256.Store(v, dst);
        }
        else
        {
            Vector128.Store(v.GetLower(), dst);
            StoreTwo(v.GetUpper(), dst + 4);
        }
    }

    /// <summary>Stores the two low floats of <paramref name="v"/> with one 64-bit store.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreTwo(Vector128<float> v, float* dst) => *(double*)dst = v.AsDouble().ToScalar();

    /// <summary>Transposing copy of 6 full rows (row stride lda) into a k-major 6-row micro-panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackA6Rows(float* src, nint lda, int kb, float* d)
    {
        int p = 0;
        for (; p + 8 <= kb; p += 8) Transpose8x8(src + p, lda, 6, d + p * 6, 6, 6);
        float* s0 = src, s1 = s0 + lda, s2 = s1 + lda, s3 = s2 + lda, s4 = s3 + lda, s5 = s4 + lda;
        for (d += p * 6; p < kb; p++, d += 6)
        {
            d[0] = s0[p]; d[1] = s1[p]; d[2] = s2[p]; d[3] = s3[p]; d[4] = s4[p]; d[5] = s5[p];
        }
    }

    /// <summary>Transposing copy of 16 full stored rows of Bᵀ (row stride ldb) into a k-major 16-column micro-panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackBT16Cols(float* src, nint ldb, int kb, float* dst)
    {
        int p = 0;
        for (; p + 8 <= kb; p += 8)
        {
            Transpose8x8(src + p, ldb, 8, dst + p * 16, 16, 8);
            Transpose8x8(src + 8 * ldb + p, ldb, 8, dst + p * 16 + 8, 16, 8);
        }
        for (; p < kb; p++)
            for (int jj = 0; jj < 16; jj++) dst[p * 16 + jj] = src[jj * ldb + p];
    }
}
