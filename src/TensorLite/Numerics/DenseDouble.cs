using System.Numerics;
using System.Runtime.InteropServices;
namespace TensorLite.Numerics;

/// <summary>
/// Host-side dense linear algebra in double precision on column-major arrays (element (i, j) of an
/// rows×cols matrix at [j·rows + i], so every column is a contiguous span): Householder QR, applying its Q,
/// and one-sided (Hestenes) Jacobi SVD with QR preconditioning. The CPU backend's QR and SVD kernels and
/// <see cref="LinearAlgebra.Linalg.PrincipalAngles"/> are built on it. Column loops are vectorized with Vector&lt;double&gt;
/// and independent columns (or disjoint Jacobi pairs) are spread over the cores.
/// </summary>
internal static class DenseDouble
{
    /// <summary>The Householder factorization of an m×n (m ≥ n) matrix: reflectors H_j = I − 2·v_j·v_jᵀ with
    /// unit v_j stored in column j of <see cref="V"/> (rows j..m−1; a zero column means H_j = I), and R.</summary>
    internal sealed class QrFactors(int m, int n, double[] v, double[] r)
    {
        public int M { get; } = m;
        public int N { get; } = n;
        public double[] V { get; } = v;
        /// <summary>n×n upper triangular, column-major. Diagonal entries may be negative (no sign fix here).</summary>
        public double[] R { get; } = r;
    }

    // ---- vector kernels -------------------------------------------------------------------------

    public static double Dot(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        int n = x.Length, i = 0;
        double sum = 0;
        if (Vector.IsHardwareAccelerated && n >= 2 * Vector<double>.Count)
        {
            var vx = MemoryMarshal.Cast<double, Vector<double>>(x);
            var vy = MemoryMarshal.Cast<double, Vector<double>>(y[..n]);
            Vector<double> acc0 = Vector<double>.Zero, acc1 = Vector<double>.Zero;
            int j = 0;
            for (; j + 1 < vx.Length; j += 2)
            {
                acc0 += vx[j] * vy[j];
                acc1 += vx[j + 1] * vy[j + 1];
            }
            if (j < vx.Length) acc0 += vx[j] * vy[j];
            sum = Vector.Sum(acc0 + acc1);
            i = vx.Length * Vector<double>.Count;
        }
        for (; i < n; i++) sum += x[i] * y[i];
        return sum;
    }

    /// <summary>y += alpha·x.</summary>
    public static void Axpy(double alpha, ReadOnlySpan<double> x, Span<double> y)
    {
        int n = x.Length, i = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<double>.Count)
        {
            var vx = MemoryMarshal.Cast<double, Vector<double>>(x);
            var vy = MemoryMarshal.Cast<double, Vector<double>>(y[..n]);
            var va = new Vector<double>(alpha);
            for (int j = 0; j < vx.Length; j++) vy[j] += va * vx[j];
            i = vx.Length * Vector<double>.Count;
        }
        for (; i < n; i++) y[i] += alpha * x[i];
    }

    /// <summary>‖x‖², ‖y‖² and x·y in one pass.</summary>
    private static void Gram(ReadOnlySpan<double> x, ReadOnlySpan<double> y, out double xx, out double yy, out double xy)
    {
        int n = x.Length, i = 0;
        double sxx = 0, syy = 0, sxy = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<double>.Count)
        {
            var vx = MemoryMarshal.Cast<double, Vector<double>>(x);
            var vy = MemoryMarshal.Cast<double, Vector<double>>(y[..n]);
            Vector<double> axx = Vector<double>.Zero, ayy = Vector<double>.Zero, axy = Vector<double>.Zero;
            for (int j = 0; j < vx.Length; j++)
            {
                var a = vx[j];
                var b = vy[j];
                axx += a * a;
                ayy += b * b;
                axy += a * b;
            }
            sxx = Vector.Sum(axx);
            syy = Vector.Sum(ayy);
            sxy = Vector.Sum(axy);
            i = vx.Length * Vector<double>.Count;
        }
        for (; i < n; i++)
        {
            sxx += x[i] * x[i];
            syy += y[i] * y[i];
            sxy += x[i] * y[i];
        }
        xx = sxx;
        yy = syy;
        xy = sxy;
    }

    /// <summary>[x, y] ← [c·x − s·y, s·x + c·y].</summary>
    private static void Rotate(Span<double> x, Span<double> y, double c, double s)
    {
        int n = x.Length, i = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<double>.Count)
        {
            var vx = MemoryMarshal.Cast<double, Vector<double>>(x);
            var vy = MemoryMarshal.Cast<double, Vector<double>>(y[..n]);
            var vc = new Vector<double>(c);
            var vs = new Vector<double>(s);
            for (int j = 0; j < vx.Length; j++)
            {
                var a = vx[j];
                var b = vy[j];
                vx[j] = vc * a - vs * b;
                vy[j] = vs * a + vc * b;
            }
            i = vx.Length * Vector<double>.Count;
        }
        for (; i < n; i++)
        {
            double a = x[i], b = y[i];
            x[i] = c * a - s * b;
            y[i] = s * a + c * b;
        }
    }

    // ---- Householder QR -------------------------------------------------------------------------

    /// <summary>Householder QR of the m×n (m ≥ n) column-major matrix <paramref name="a"/>, which it overwrites.</summary>
    public static QrFactors Qr(double[] a, int m, int n)
    {
        var v = new double[(long)m * n];
        for (int j = 0; j < n; j++)
        {
            var col = a.AsSpan(j * m + j, m - j);
            double norm = Math.Sqrt(Dot(col, col));
            if (norm == 0) continue; // H_j = I; R[j, j] = 0
            double alpha = col[0] >= 0 ? -norm : norm;
            var vj = v.AsSpan(j * m + j, m - j);
            col.CopyTo(vj);
            vj[0] -= alpha;
            double vnorm = Math.Sqrt(Dot(vj, vj));
            if (vnorm == 0) continue;
            double inv = 1 / vnorm;
            for (int i = 0; i < vj.Length; i++) vj[i] *= inv;
            col.Clear();
            col[0] = alpha;
            int jj = j;
            CpuParallel.For(n - j - 1, m - j, (c0, c1) =>
            {
                var vs = v.AsSpan(jj * m + jj, m - jj);
                for (int c = jj + 1 + c0; c < jj + 1 + c1; c++)
                {
                    var x = a.AsSpan(c * m + jj, m - jj);
                    Axpy(-2 * Dot(vs, x), vs, x);
                }
            });
        }
        var r = new double[(long)n * n];
        for (int j = 0; j < n; j++)
            a.AsSpan(j * m, j + 1).CopyTo(r.AsSpan(j * n, j + 1));
        return new QrFactors(m, n, v, r);
    }

    /// <summary>Q·X for an m×cols column-major X (overwritten), Q = H_0·H_1·…·H_{n−1}. With
    /// <paramref name="thinIdentity"/> X is known to be [I_n; 0] (cols = n), and reflector j skips columns below j.</summary>
    public static void ApplyQ(QrFactors f, double[] x, int cols, bool thinIdentity)
    {
        int m = f.M;
        var v = f.V;
        for (int j = f.N - 1; j >= 0; j--)
        {
            if (v[j * m + j] == 0 && Dot(v.AsSpan(j * m + j, m - j), v.AsSpan(j * m + j, m - j)) == 0) continue;
            int first = thinIdentity ? j : 0;
            int jj = j;
            CpuParallel.For(cols - first, m - j, (c0, c1) =>
            {
                var vs = v.AsSpan(jj * m + jj, m - jj);
                for (int c = first + c0; c < first + c1; c++)
                {
                    var xs = x.AsSpan(c * m + jj, m - jj);
                    Axpy(-2 * Dot(vs, xs), vs, xs);
                }
            });
        }
    }

    /// <summary>Thin QR with diag(R) ≥ 0: Q (m×n, orthonormal columns) and R (n×n), both column-major.
    /// Overwrites <paramref name="a"/>.</summary>
    public static (double[] Q, double[] R) ThinQr(double[] a, int m, int n)
    {
        var f = Qr(a, m, n);
        var q = new double[(long)m * n];
        for (int j = 0; j < n; j++) q[j * m + j] = 1;
        ApplyQ(f, q, n, thinIdentity: true);
        var r = f.R;
        for (int j = 0; j < n; j++)
        {
            if (r[j * n + j] >= 0) continue;
            for (int c = j; c < n; c++) r[c * n + j] = -r[c * n + j];
            foreach (ref var e in q.AsSpan(j * m, m)) e = -e;
        }
        return (q, r);
    }

    // ---- SVD ------------------------------------------------------------------------------------

    /// <summary>
    /// One-sided Jacobi on the columns of the rows×cols matrix <paramref name="w"/> (overwritten by U·Σ), accumulating
    /// the rotations into the cols×cols matrix <paramref name="v"/> (which should start as the identity), so that
    /// w_in·v = w_out with mutually orthogonal columns. Returns the sweeps used.
    /// <para>Ordering (cyclic by blocks): the columns are cut into blocks small enough that two blocks of w and v stay
    /// in cache. A sweep first rotates all pairs inside each block (blocks in parallel), then pairs up the blocks
    /// round-robin: in every round the block pairs are disjoint and run in parallel, each rotating all its cross
    /// pairs while its 2b columns are cache-resident. Every column pair is visited once per sweep, and since the
    /// schedule does not depend on the thread count, neither does the result.</para>
    /// </summary>
    public static int Jacobi(double[] w, int rows, int cols, double[] v, int maxSweeps = 60)
    {
        if (cols < 2) return 0;
        double tol = Math.Sqrt(rows) * 2.220446049250313e-16;
        // Two blocks of w and v columns in ~1 MiB.
        int b = (int)Math.Clamp((1L << 20) / (16L * (rows + cols)), 4, 128);
        int nb = (cols + b - 1) / b;
        int slots = nb + (nb & 1);
        var pos = new int[slots];
        var pairI = new int[slots / 2];
        var pairJ = new int[slots / 2];
        for (int sweep = 1; sweep <= maxSweeps; sweep++)
        {
            int rotated = 0;
            CpuParallel.For(nb, (long)b * b * (3L * rows + cols), (i0, i1) =>
            {
                bool any = false;
                for (int blk = i0; blk < i1; blk++)
                {
                    int lo = blk * b, hi = Math.Min(cols, lo + b);
                    for (int p = lo; p < hi; p++)
                        for (int q = p + 1; q < hi; q++) any |= RotatePair(w, rows, v, cols, p, q, tol);
                }
                if (any) Volatile.Write(ref rotated, 1);
            });
            for (int i = 0; i < slots; i++) pos[i] = i;
            for (int round = 0; round < slots - 1; round++)
            {
                for (int i = 0; i < slots / 2; i++)
                {
                    pairI[i] = Math.Min(pos[i], pos[slots - 1 - i]);
                    pairJ[i] = Math.Max(pos[i], pos[slots - 1 - i]);
                }
                CpuParallel.For(slots / 2, (long)b * b * (3L * rows + cols), (i0, i1) =>
                {
                    bool any = false;
                    for (int i = i0; i < i1; i++)
                    {
                        int bi = pairI[i], bj = pairJ[i];
                        if (bj >= nb) continue; // the dummy slot of an odd block count
                        int pLo = bi * b, pHi = Math.Min(cols, pLo + b);
                        int qLo = bj * b, qHi = Math.Min(cols, qLo + b);
                        for (int p = pLo; p < pHi; p++)
                            for (int q = qLo; q < qHi; q++) any |= RotatePair(w, rows, v, cols, p, q, tol);
                    }
                    if (any) Volatile.Write(ref rotated, 1);
                });
                // Round-robin: keep slot 0, rotate slots 1..slots−1 by one.
                int last = pos[slots - 1];
                for (int i = slots - 1; i > 1; i--) pos[i] = pos[i - 1];
                pos[1] = last;
            }
            if (rotated == 0) return sweep;
        }
        return maxSweeps;
    }

    /// <summary>Orthogonalizes columns p &lt; q of w by one Jacobi rotation (applied to v's columns too), unless they
    /// are already orthogonal to the relative tolerance. Returns whether it rotated.</summary>
    private static bool RotatePair(double[] w, int rows, double[] v, int cols, int p, int q, double tol)
    {
        var xp = w.AsSpan(p * rows, rows);
        var xq = w.AsSpan(q * rows, rows);
        Gram(xp, xq, out double alpha, out double beta, out double gamma);
        if (gamma == 0 || Math.Abs(gamma) <= tol * Math.Sqrt(alpha) * Math.Sqrt(beta)) return false;
        double zeta = (beta - alpha) / (2 * gamma);
        double t = Math.Abs(zeta) > 1e100
            ? 0.5 / zeta
            : (zeta >= 0 ? 1 : -1) / (Math.Abs(zeta) + Math.Sqrt(1 + zeta * zeta));
        double c = 1 / Math.Sqrt(1 + t * t), s = c * t;
        Rotate(xp, xq, c, s);
        Rotate(v.AsSpan(p * cols, cols), v.AsSpan(q * cols, cols), c, s);
        return true;
    }

    /// <summary>
    /// Thin SVD of the row-major m×n matrix <paramref name="a"/>: A = U·diag(S)·Vᵀ with k = min(m, n), S descending,
    /// U (m×k) and V (n×k) column-major with orthonormal columns. Works on the tall orientation T (A or Aᵀ):
    /// T = Q·R by Householder, then one-sided Jacobi on Rᵀ (whose columns are nearly orthogonal already, so few
    /// sweeps are needed), Rᵀ = Ux·Σ·Vxᵀ ⇒ T = (Q·Vx)·Σ·Uxᵀ.
    /// </summary>
    public static (double[] U, double[] S, double[] V) Svd(ReadOnlySpan<double> a, int m, int n)
    {
        bool tall = m >= n;
        int bigM = tall ? m : n, k = tall ? n : m;
        // T column-major (bigM×k). For a wide A, A's row-major buffer is Aᵀ column-major.
        var t = new double[(long)bigM * k];
        if (tall)
        {
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
        }
        else a.CopyTo(t);

        var f = Qr(t, bigM, k);
        // X = Rᵀ, column-major k×k: X(i, j) = R(j, i).
        var x = new double[(long)k * k];
        for (int j = 0; j < k; j++)
            for (int i = 0; i <= j; i++) x[i * k + j] = f.R[j * k + i];
        var vx = new double[(long)k * k];
        for (int j = 0; j < k; j++) vx[j * k + j] = 1;
        Jacobi(x, k, k, vx);

        var sigma = new double[k];
        for (int j = 0; j < k; j++) sigma[j] = Math.Sqrt(Dot(x.AsSpan(j * k, k), x.AsSpan(j * k, k)));
        var order = Enumerable.Range(0, k).OrderByDescending(j => sigma[j]).ThenBy(j => j).ToArray();

        // Small-side singular vectors (columns of X normalized) and big-side ones (Q·[Vx; 0]), sorted.
        var small = new double[(long)k * k];
        var big = new double[(long)bigM * k];
        var s = new double[k];
        var missing = new List<int>();
        for (int c = 0; c < k; c++)
        {
            int j = order[c];
            s[c] = sigma[j];
            var dst = small.AsSpan(c * k, k);
            if (sigma[j] > 1e-250)
            {
                double inv = 1 / sigma[j];
                var src = x.AsSpan(j * k, k);
                for (int i = 0; i < k; i++) dst[i] = src[i] * inv;
            }
            else missing.Add(c);
            vx.AsSpan(j * k, k).CopyTo(big.AsSpan(c * bigM, k));
        }
        CompleteOrthonormal(small, k, k, missing);
        ApplyQ(f, big, k, thinIdentity: false);
        return tall ? (big, s, small) : (small, s, big);
    }

    /// <summary>Singular values (descending) of a column-major rows×cols matrix.</summary>
    public static double[] SingularValues(double[] colMajor, int rows, int cols)
    {
        // A column-major rows×cols buffer is the row-major cols×rows transpose, which has the same singular values.
        return Svd(colMajor, cols, rows).S;
    }

    /// <summary>Fills the listed columns of a column-major rows×cols matrix (whose other columns are orthonormal)
    /// with unit vectors orthogonal to all other columns, by twice-repeated Gram–Schmidt on coordinate vectors.</summary>
    private static void CompleteOrthonormal(double[] u, int rows, int cols, List<int> missing)
    {
        if (missing.Count == 0) return;
        var filled = Enumerable.Range(0, cols).Where(c => !missing.Contains(c)).ToList();
        int e = 0;
        foreach (int c in missing)
        {
            var col = u.AsSpan(c * rows, rows);
            while (true)
            {
                col.Clear();
                col[e++ % rows] = 1;
                for (int pass = 0; pass < 2; pass++)
                    foreach (int o in filled)
                    {
                        var other = u.AsSpan(o * rows, rows);
                        Axpy(-Dot(other, col), other, col);
                    }
                double norm = Math.Sqrt(Dot(col, col));
                if (norm > 0.5 || e > 2 * rows)
                {
                    double inv = 1 / norm;
                    foreach (ref var z in col) z *= inv;
                    break;
                }
            }
            filled.Add(c);
        }
    }
}
