using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

// Dense linear-algebra kernels.
// QR: blocked Householder. Each panel of PanelWidth columns is widened to a column-major double copy and factored by
// DenseDouble.Qr; its reflectors are rounded to float32 and combined into the compact WY form H_1·…·H_b = I − V·T·Vᵀ,
// with T built in double from the rounded V, so the block reflector is orthogonal for exactly the V that is applied.
// The trailing columns and the formation of Q are float32 GEMMs (CpuGemm). The result is backward stable at float32
// level (‖A − QR‖ and ‖QᵀQ − I‖ of order 1e-7 times a slowly growing factor) whatever the conditioning of A.
// SVD: the matrix is widened to double and factored by DenseDouble.Svd (QR-preconditioned one-sided Jacobi).
internal sealed unsafe partial class CpuBackend
{
    /// <summary>Columns per Householder panel: wide enough that the trailing GEMMs (inner dimension b) run near
    /// full speed, narrow enough that the unblocked double panel (2·m·b² per panel) stays cheap.</summary>
    internal const int QrPanelWidth = 48;

    public void HouseholderQr(Tensor a, Tensor q, Tensor r)
    {
        int m = a.Shape[0], n = a.Shape[1], nb = QrPanelWidth;
        var work = new float[(long)m * n];
        new ReadOnlySpan<float>(Ptr(a), m * n).CopyTo(work);
        var vs = new List<(float[] V, float[] T)>();
        var wbuf = new float[(long)Math.Min(nb, n) * n];
        var w2buf = new float[(long)Math.Min(nb, n) * n];
        fixed (float* wk = work, w1 = wbuf, w2 = w2buf)
        {
            for (int jp = 0; jp < n; jp += nb)
            {
                int b = Math.Min(nb, n - jp), mp = m - jp;
                float* panel = wk + (long)jp * n + jp;
                var pd = new double[(long)mp * b];
                for (int i = 0; i < mp; i++)
                    for (int c = 0; c < b; c++) pd[(long)c * mp + i] = panel[(long)i * n + c];
                var f = DenseDouble.Qr(pd, mp, b);
                // R's diagonal block goes back into the working matrix (the rows below it are no longer needed).
                for (int i = 0; i < b; i++)
                    for (int c = 0; c < b; c++) panel[(long)i * n + c] = c >= i ? (float)f.R[c * b + i] : 0f;
                var (vf, tf) = CompactWy(f.V, mp, b);
                vs.Add((vf, tf));
                int nt = n - jp - b;
                if (nt == 0) continue;
                // C ← (I − V·Tᵀ·Vᵀ)·C for the trailing columns C = A[jp:, jp+b:].
                fixed (float* v = vf, t = tf)
                {
                    float* cm = panel + b;
                    CpuGemm.Sgemm(true, false, b, nt, mp, 1f, v, b, cm, n, 0f, w1, nt);
                    CpuGemm.Sgemm(true, false, b, nt, b, 1f, t, b, w1, nt, 0f, w2, nt);
                    CpuGemm.Sgemm(false, false, mp, nt, b, -1f, v, b, w2, nt, 1f, cm, n);
                }
            }

            // Q = H_1·…·H_n·[I; 0], applying the blocks backwards. Block p only touches rows and columns ≥ jp: the
            // columns left of it are still unit vectors whose nonzero lies above row jp.
            float* qp = Ptr(q);
            new Span<float>(qp, m * n).Clear();
            for (int i = 0; i < n; i++) qp[(long)i * n + i] = 1f;
            for (int p = vs.Count - 1; p >= 0; p--)
            {
                int jp = p * nb, b = Math.Min(nb, n - jp), mp = m - jp, nq = n - jp;
                float* qs = qp + (long)jp * n + jp;
                fixed (float* v = vs[p].V, t = vs[p].T)
                {
                    CpuGemm.Sgemm(true, false, b, nq, mp, 1f, v, b, qs, n, 0f, w1, nq);
                    CpuGemm.Sgemm(false, false, b, nq, b, 1f, t, b, w1, nq, 0f, w2, nq);
                    CpuGemm.Sgemm(false, false, mp, nq, b, -1f, v, b, w2, nq, 1f, qs, n);
                }
            }

            // R is the upper triangle of the working matrix; flip signs so that diag(R) ≥ 0.
            float* rp = Ptr(r);
            for (int i = 0; i < n; i++)
            {
                float sign = wk[(long)i * n + i] < 0 ? -1f : 1f;
                for (int j = 0; j < n; j++) rp[(long)i * n + j] = j >= i ? sign * wk[(long)i * n + j] : 0f;
                if (sign < 0)
                    for (int row = 0; row < m; row++) qp[(long)row * n + i] = -qp[(long)row * n + i];
            }
        }
    }

    /// <summary>The reflectors of one panel (unit vectors, column-major mp×b, H_j = I − 2·v_j·v_jᵀ) rounded to float32
    /// as a row-major mp×b V, and the upper triangular b×b T (row-major float32) with H_1·…·H_b = I − V·T·Vᵀ, where
    /// H_j = I − τ_j·v_j·v_jᵀ, τ_j = 2/‖v_j‖² for the rounded v_j (0 for a zero one). Built in double by the
    /// recurrence T[:j, j] = −τ_j·T[:j, :j]·(V[:, :j]ᵀ·v_j).</summary>
    private static (float[] V, float[] T) CompactWy(double[] v, int mp, int b)
    {
        var vf = new float[(long)mp * b];
        var vr = new double[(long)mp * b];
        for (int c = 0; c < b; c++)
            for (int i = 0; i < mp; i++)
            {
                float x = (float)v[(long)c * mp + i];
                vf[(long)i * b + c] = x;
                vr[(long)c * mp + i] = x;
            }
        var gram = new double[b * b];
        CpuParallel.For(b, (long)mp * b, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
                for (int i = 0; i <= c; i++)
                    gram[i * b + c] = DenseDouble.Dot(vr.AsSpan(i * mp, mp), vr.AsSpan(c * mp, mp));
        });
        var t = new double[b * b];
        var z = new double[b];
        for (int c = 0; c < b; c++)
        {
            double tau = gram[c * b + c] > 0 ? 2 / gram[c * b + c] : 0;
            t[c * b + c] = tau;
            for (int i = 0; i < c; i++)
            {
                double sum = 0;
                for (int k = i; k < c; k++) sum += t[i * b + k] * gram[k * b + c];
                z[i] = sum;
            }
            for (int i = 0; i < c; i++) t[i * b + c] = -tau * z[i];
        }
        var tf = new float[b * b];
        for (int i = 0; i < tf.Length; i++) tf[i] = (float)t[i];
        return (vf, tf);
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
