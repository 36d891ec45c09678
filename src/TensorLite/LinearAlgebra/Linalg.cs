using TensorLite.Autograd;
using TensorLite.Numerics;

namespace TensorLite.LinearAlgebra;

/// <summary>
/// Dense linear algebra on float32 matrices for the optimizer side of training (projections for GaLore, Online
/// Subspace Descent, GRASS, FRUGAL): thin QR, exact and randomized SVD, an online-PCA update of a projection,
/// row/column selection with gather/scatter, and principal angles. Nothing here records autograd history: every
/// op runs under <see cref="GradMode.NoGrad"/>. Inputs may be strided views (e.g. <c>a.T</c>); the backend kernels
/// get contiguous copies only where they need them.
/// </summary>
public static partial class Linalg
{
    internal static void RequireMatrix(Tensor a, string op, string name = "input")
    {
        ArgumentNullException.ThrowIfNull(a, name);
        a.ThrowIfDisposed();
        if (a.DType != DType.Float32)
            throw new DTypeMismatchException($"{op}: {name} must be float32, got {a.Describe()}.");
        if (a.Rank != 2)
            throw new ShapeMismatchException($"{op}: {name} must be a 2-D matrix, got shape {ShapeMath.Format(a.Shape)}.");
        if (a.Shape[0] == 0 || a.Shape[1] == 0)
            throw new ShapeMismatchException($"{op}: {name} must be a non-empty matrix, got shape {ShapeMath.Format(a.Shape)}.");
    }

    private static void RequireSameBackend(Tensor a, Tensor b, string op)
    {
        if (!ReferenceEquals(a.Backend, b.Backend))
            throw new TensorLiteException($"{op}: operands live on different backends ({a.Backend.Name} and {b.Backend.Name}).");
    }

    // ---- QR -------------------------------------------------------------------------------------

    /// <summary>
    /// Thin Householder QR of a [m, n] matrix with m ≥ n: Q [m, n] with orthonormal columns and R [n, n] upper
    /// triangular with a non-negative diagonal, a = Q·R. For a rank-deficient input Q is still orthonormal (a zero
    /// column gets R[j, j] = 0). The CPU kernel is blocked: double-precision panels, float32 GEMM updates.
    /// </summary>
    public static (Tensor Q, Tensor R) Qr(Tensor a)
    {
        const string op = "qr";
        RequireMatrix(a, op);
        int m = a.Shape[0], n = a.Shape[1];
        if (m < n)
            throw new ShapeMismatchException($"qr: thin QR needs at least as many rows as columns, got shape {ShapeMath.Format(a.Shape)}.");
        using var noGrad = GradMode.NoGrad();
        var q = Tensor.Empty([m, n], DType.Float32, a.Backend);
        var r = Tensor.Empty([n, n], DType.Float32, a.Backend);
        using (var ac = a.ContiguousNoGrad()) a.Backend.HouseholderQr(ac, q, r);
        return (q, r);
    }

    /// <summary>An orthonormal basis of the column space of a [m, n] (m ≥ n): the Q of <see cref="Qr"/>.</summary>
    public static Tensor Orthonormalize(Tensor a)
    {
        var (q, r) = Qr(a);
        r.Dispose();
        return q;
    }

    // ---- SVD ------------------------------------------------------------------------------------

    /// <summary>
    /// Exact thin SVD a = U·diag(S)·Vt with singular values in descending order: U [m, k], S [k], Vt [k, n] where
    /// k = <paramref name="rank"/> (the leading triplets) or min(m, n) when it is null. The CPU backend computes in
    /// double precision (Householder QR of the tall orientation, then one-sided Jacobi on the small triangular factor).
    /// </summary>
    public static (Tensor U, Tensor S, Tensor Vt) Svd(Tensor a, int? rank = null)
    {
        const string op = "svd";
        RequireMatrix(a, op);
        int m = a.Shape[0], n = a.Shape[1], full = Math.Min(m, n);
        int k = rank ?? full;
        if (k < 1 || k > full)
            throw new ArgumentOutOfRangeException(nameof(rank), $"svd: rank {k} must be between 1 and min(m, n) = {full} for shape {ShapeMath.Format(a.Shape)}.");
        using var noGrad = GradMode.NoGrad();
        var u = Tensor.Empty([m, k], DType.Float32, a.Backend);
        var s = Tensor.Empty([k], DType.Float32, a.Backend);
        var vt = Tensor.Empty([k, n], DType.Float32, a.Backend);
        using (var ac = a.ContiguousNoGrad()) a.Backend.Svd(ac, u, s, vt);
        return (u, s, vt);
    }

    /// <summary>
    /// Randomized truncated SVD (Halko, Martinsson &amp; Tropp 2011): a Gaussian sketch Ω [n, ℓ] with
    /// ℓ = min(rank + oversampling, min(m, n)), Y = A·Ω, then <paramref name="powerIterations"/> rounds of
    /// Y ← A·orth(Aᵀ·orth(Y)) (re-orthonormalizing by QR after every product), Q = orth(Y), B = Qᵀ·A [ℓ, n],
    /// the QR Bᵀ = Qb·Rb and the exact SVD of the ℓ×ℓ factor, Rbᵀ = Ũ·S·Ṽt, so B = Ũ·S·Vt with Vt = Ṽt·Qbᵀ, and
    /// U = Q·Ũ, all truncated to <paramref name="rank"/>. Built from matmul, QR and the small exact SVD, so it runs on any backend; cost O(mnℓ·(2q + 2)) plus O((m + n)ℓ²).
    /// </summary>
    public static (Tensor U, Tensor S, Tensor Vt) RandomizedSvd(Tensor a, int rank, Generator generator,
        int oversampling = 10, int powerIterations = 2)
    {
        const string op = "randomized_svd";
        RequireMatrix(a, op);
        ArgumentNullException.ThrowIfNull(generator);
        int m = a.Shape[0], n = a.Shape[1], full = Math.Min(m, n);
        if (rank < 1 || rank > full)
            throw new ArgumentOutOfRangeException(nameof(rank), $"randomized_svd: rank {rank} must be between 1 and min(m, n) = {full} for shape {ShapeMath.Format(a.Shape)}.");
        if (oversampling < 0)
            throw new ArgumentOutOfRangeException(nameof(oversampling), $"randomized_svd: oversampling must be non-negative, got {oversampling}.");
        if (powerIterations < 0)
            throw new ArgumentOutOfRangeException(nameof(powerIterations), $"randomized_svd: the number of power iterations must be non-negative, got {powerIterations}.");
        using var noGrad = GradMode.NoGrad();
        int l = Math.Min(rank + oversampling, full);
        Tensor q;
        using (var omega = Tensor.RandN([n, l], generator, 1f, a.Backend))
        using (var y = a.MatMul(omega))
            q = Orthonormalize(y);
        using var at = a.T;
        for (int i = 0; i < powerIterations; i++)
        {
            using var z = at.MatMul(q);
            q.Dispose();
            using var qz = Orthonormalize(z);
            using var y = a.MatMul(qz);
            q = Orthonormalize(y);
        }
        // B = QᵀA is ℓ×n and wide. Its QR-preconditioned SVD starts with Bᵀ = Qb·Rb by the fast blocked QR, so the
        // exact SVD only sees the ℓ×ℓ factor: Rbᵀ = Ur·S·Vrt gives B = Ur·S·(Vrt·Qbᵀ).
        using (q)
        {
            using var qt = q.T;
            using var b = qt.MatMul(a);
            using var bt = b.T;
            var (qb, rb) = Qr(bt);
            using (qb)
            using (rb)
            {
                using var rbt = rb.T;
                var (ur, s, vrt) = Svd(rbt, rank);
                using (ur)
                using (vrt)
                using (var qbt = qb.T)
                    return (q.MatMul(ur), s, vrt.MatMul(qbt));
            }
        }
    }

    // ---- principal angles -----------------------------------------------------------------------

    /// <summary>
    /// The principal angles (radians, ascending) between the column spaces of a [m, ka] and b [m, kb] (ka, kb ≤ m),
    /// min(ka, kb) of them. Computed on the host in double precision: cosines are the singular values of Qaᵀ·Qb and
    /// sines those of Qb − Qa·(Qaᵀ·Qb) (for kb ≤ ka); each angle comes from whichever of the two is better
    /// conditioned (asin below π/4, acos above), so angles near zero are accurate too.
    /// </summary>
    public static double[] PrincipalAngles(Tensor a, Tensor b)
    {
        const string op = "principal_angles";
        RequireMatrix(a, op, "a");
        RequireMatrix(b, op, "b");
        if (a.Shape[0] != b.Shape[0])
            throw new ShapeMismatchException($"principal_angles: a {ShapeMath.Format(a.Shape)} and b {ShapeMath.Format(b.Shape)} must have the same number of rows.");
        int m = a.Shape[0];
        if (a.Shape[1] > m || b.Shape[1] > m)
            throw new ShapeMismatchException($"principal_angles: subspaces of R^{m} have at most {m} basis columns, got a {ShapeMath.Format(a.Shape)} and b {ShapeMath.Format(b.Shape)}.");
        if (b.Shape[1] > a.Shape[1]) (a, b) = (b, a);
        int ka = a.Shape[1], kb = b.Shape[1];
        var (qa, _) = DenseDouble.ThinQr(ColumnMajor(a), m, ka);
        var (qb, _) = DenseDouble.ThinQr(ColumnMajor(b), m, kb);
        // C = Qaᵀ·Qb (ka×kb), D = Qb − Qa·C (m×kb), both column-major.
        var c = new double[ka * kb];
        var d = (double[])qb.Clone();
        for (int j = 0; j < kb; j++)
        {
            var qbj = qb.AsSpan(j * m, m);
            for (int i = 0; i < ka; i++)
            {
                double cij = DenseDouble.Dot(qa.AsSpan(i * m, m), qbj);
                c[j * ka + i] = cij;
                DenseDouble.Axpy(-cij, qa.AsSpan(i * m, m), d.AsSpan(j * m, m));
            }
        }
        var cos = DenseDouble.SingularValues(c, ka, kb);                 // descending
        var sin = DenseDouble.SingularValues(d, m, kb).Reverse().ToArray(); // ascending, pairs with cos
        var angles = new double[kb];
        for (int i = 0; i < kb; i++)
        {
            double ci = Math.Min(1, cos[i]), si = Math.Min(1, sin[i]);
            angles[i] = si < Math.Sqrt(0.5) ? Math.Asin(si) : Math.Acos(ci);
        }
        Array.Sort(angles);
        return angles;
    }

    /// <summary>A float32 matrix as a column-major double array.</summary>
    internal static double[] ColumnMajor(Tensor a)
    {
        int m = a.Shape[0], n = a.Shape[1];
        var host = a.ToArray();
        var result = new double[(long)m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) result[j * m + i] = host[i * n + j];
        return result;
    }
}
