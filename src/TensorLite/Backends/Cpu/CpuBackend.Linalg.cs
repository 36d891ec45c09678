using TensorLite.LinearAlgebra;

namespace TensorLite.Backends.Cpu;

// Dense linear-algebra kernels: the float32 matrix is widened to a column-major double copy, factored by the
// double-precision routines of DenseDouble (Householder QR; QR-preconditioned one-sided Jacobi SVD), and the
// factors are rounded back to float32. Double accumulation keeps Q orthonormal to ~1e-7 (float rounding) and
// makes small singular values accurate relative to the largest.
public sealed unsafe partial class CpuBackend
{
    public void HouseholderQr(Tensor a, Tensor q, Tensor r)
    {
        int m = a.Shape[0], n = a.Shape[1];
        var src = new ReadOnlySpan<float>(Ptr(a), m * n);
        var colMajor = new double[(long)m * n];
        for (int i = 0; i < m; i++)
        {
            var row = src.Slice(i * n, n);
            for (int j = 0; j < n; j++) colMajor[j * m + i] = row[j];
        }
        var (qd, rd) = DenseDouble.ThinQr(colMajor, m, n);
        var qs = Span(q);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) qs[i * n + j] = (float)qd[j * m + i];
        var rs = Span(r);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) rs[i * n + j] = j >= i ? (float)rd[j * n + i] : 0f;
    }

    public void Svd(Tensor a, Tensor u, Tensor s, Tensor vt)
    {
        int m = a.Shape[0], n = a.Shape[1], k = s.Numel;
        var src = new ReadOnlySpan<float>(Ptr(a), m * n);
        var ad = new double[(long)m * n];
        for (int i = 0; i < ad.Length; i++) ad[i] = src[i];
        var (ud, sd, vd) = DenseDouble.Svd(ad, m, n);
        var us = Span(u);
        for (int i = 0; i < m; i++)
            for (int c = 0; c < k; c++) us[i * k + c] = (float)ud[c * m + i];
        var ss = Span(s);
        for (int c = 0; c < k; c++) ss[c] = (float)sd[c];
        var vs = Span(vt);
        for (int c = 0; c < k; c++)
            for (int j = 0; j < n; j++) vs[c * n + j] = (float)vd[c * n + j];
    }
}
