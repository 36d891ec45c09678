using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TensorLite.Backends.Cpu;

// The register-tiled micro-kernels: 12×32 (Vector512) and 6×16 (Vector256).
public static unsafe partial class CpuGemm
{
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
        if (readC && Sse.IsSupported)
        {
            // as in Kernel12x32: a 16-float row may straddle two cache lines
            for (int r = 0; r < 6; r++) { Sse.Prefetch0(c + r * ldc); Sse.Prefetch0(c + r * ldc + 15); }
        }
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
