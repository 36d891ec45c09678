using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;

namespace TensorLite.Ilgpu;

// Dense linear algebra: Householder QR and one-sided (Hestenes) Jacobi SVD.
//
// Everything is computed in double precision on column-major working copies (element (i, j) of a rows×cols matrix at
// [j·rows + i]), so that every column the reducing kernels walk is contiguous. The float32 inputs are widened once and
// the results rounded once at the end, as the CPU backend does. This needs a device with fast fp64 (H100/H200: half the
// fp32 rate, not the 1/64 of consumer parts).
//
// Reducing kernels are explicitly grouped: one group per column (QR) or per column pair (Jacobi). The group size is read
// at run time (Group.DimX, a power of two up to LinalgGroupSize, which sizes the shared scratch): 64 on CUDA, smaller on
// the CPU accelerator, where every emulated thread is an OS thread. Each thread owns the elements i ≡ tid (mod group
// size) of the columns it works on, so a thread only ever rewrites elements it read itself and the only barriers needed
// are those of the group reductions, which sit in control flow that is uniform across the group (same code on CUDA and
// on the CPU accelerator).
public static partial class IlgpuKernels
{
    /// <summary>The most threads per group of the QR and Jacobi kernels (a power of two, a multiple of the CUDA warp),
    /// and the group size used on CUDA.</summary>
    public const int LinalgGroupSize = 64;

    /// <summary>Singular values at most this are treated as zero: their left vectors are completed instead of
    /// normalized (the CPU backend's threshold).</summary>
    public const double SvdZeroSingularValue = 1e-250;

    // ---- layout -------------------------------------------------------------------------------------

    /// <summary>Widens the row-major float32 a [rows, cols] to double: column-major (w[c·rows + r] = a[r, c]) when
    /// <paramref name="columnMajor"/> is 1, element for element otherwise (which is aᵀ in column-major order).
    /// One thread per element of a.</summary>
    public static void WidenMatrix(Index1D i, ArrayView<float> a, ArrayView<double> w, int rows, int cols, int columnMajor)
    {
        if (columnMajor == 0)
        {
            w[i] = a[i];
            return;
        }
        int r = i / cols, c = i % cols;
        w[(long)c * rows + r] = a[i];
    }

    /// <summary>The first columns of the rows×rows identity, column-major (i over rows·cols).</summary>
    public static void SetIdentityColumns(Index1D i, ArrayView<double> x, int rows) =>
        x[i] = i % rows == i / rows ? 1.0 : 0.0;

    // ---- Householder QR -----------------------------------------------------------------------------

    /// <summary>
    /// Forms the reflector of column j of the column-major m-row working matrix w (one group): with x = w[j:, j],
    /// α = −sign(x₀)·‖x‖ and v = (x − α·e₁)/‖x − α·e₁‖ written to rows j.. of column j of <paramref name="v"/>, so
    /// that (I − 2·v·vᵀ)·x = α·e₁; column j of w becomes (α, 0, …, 0). A zero column gives v = 0 (the identity) and
    /// R[j, j] = 0.
    /// </summary>
    public static void QrReflector(ArrayView<double> w, ArrayView<double> v, int m, int j)
    {
        var scratch = SharedMemory.Allocate<double>(LinalgGroupSize);
        int tid = Group.IdxX;
        long col = (long)j * m;
        // Read before the reduction's barriers: thread 0 overwrites this element below.
        double x0 = w[col + j];
        double sumSquares = 0;
        for (int i = j + tid; i < m; i += Group.DimX) sumSquares += w[col + i] * w[col + i];
        double norm = XMath.Sqrt(GroupSum(scratch, tid, sumSquares));
        double alpha = x0 >= 0 ? 0.0 - norm : norm;   // 0 − norm: a zero column leaves +0 on R's diagonal, not −0
        // ‖x − α·e₁‖² = ‖x‖² − 2·α·x₀ + α² = 2·‖x‖·(‖x‖ + |x₀|): no cancellation.
        double vNorm = XMath.Sqrt(2 * norm * (norm + XMath.Abs(x0)));
        double inv = vNorm > 0 ? 1 / vNorm : 0;
        for (int i = j + tid; i < m; i += Group.DimX)
        {
            double x = w[col + i];
            v[col + i] = (i == j ? x - alpha : x) * inv;
            w[col + i] = i == j ? alpha : 0;
        }
    }

    /// <summary>x ← (I − 2·v_j·v_jᵀ)·x for the columns firstColumn + group index of the column-major m-row matrix x,
    /// where v_j is rows j.. of column j of <paramref name="v"/>. One group per column: dot product, then update.</summary>
    public static void QrApplyReflector(ArrayView<double> v, ArrayView<double> x, int m, int j, int firstColumn)
    {
        var scratch = SharedMemory.Allocate<double>(LinalgGroupSize);
        int tid = Group.IdxX;
        long vc = (long)j * m, xc = (long)(firstColumn + Grid.IdxX) * m;
        double dot = 0;
        for (int i = j + tid; i < m; i += Group.DimX) dot += v[vc + i] * x[xc + i];
        double scale = 2 * GroupSum(scratch, tid, dot);
        for (int i = j + tid; i < m; i += Group.DimX) x[xc + i] -= scale * v[vc + i];
    }

    /// <summary>Rounds the column-major Q (m×n) to the row-major float32 q, negating column c where R[c, c] &lt; 0 so
    /// that diag(R) ≥ 0. One thread per element of q.</summary>
    public static void QrStoreQ(Index1D i, ArrayView<double> qd, ArrayView<double> w, ArrayView<float> q, int m, int n)
    {
        int r = i / n, c = i % n;
        double sign = w[(long)c * m + c] < 0 ? -1.0 : 1.0;
        q[i] = (float)(sign * qd[(long)c * m + r]);
    }

    /// <summary>The upper triangle of the column-major working matrix w (m rows) as the row-major float32 r [n, n],
    /// row i negated where R[i, i] &lt; 0 (matching <see cref="QrStoreQ"/>), zeros below the diagonal.</summary>
    public static void QrStoreR(Index1D i, ArrayView<double> w, ArrayView<float> r, int m, int n)
    {
        int row = i / n, c = i % n;
        double sign = w[(long)row * m + row] < 0 ? -1.0 : 1.0;
        r[i] = c >= row ? (float)(sign * w[(long)c * m + row]) : 0f;
    }

    // ---- one-sided Jacobi SVD -----------------------------------------------------------------------

    /// <summary>x = Rᵀ (column-major k×k) from the upper triangle R of the column-major working matrix w
    /// (<paramref name="rows"/> rows) that <see cref="QrReflector"/> left behind. One thread per element of x.</summary>
    public static void TransposeUpperTriangle(Index1D i, ArrayView<double> w, ArrayView<double> x, int rows, int k)
    {
        int r = i % k, c = i / k;   // x(r, c) = R(c, r), zero above x's diagonal
        x[i] = r >= c ? w[(long)r * rows + c] : 0.0;
    }

    /// <summary>Column c of the column-major big (rows×k) = column order[c] of the k×k v padded with zeros below row k:
    /// the start of Q·[V; 0]. One thread per element of big.</summary>
    public static void PadSortedColumns(Index1D i, ArrayView<double> v, ArrayView<int> order, ArrayView<double> big, int rows, int k)
    {
        int c = i / rows, r = i % rows;
        big[i] = r < k ? v[(long)order[c] * k + r] : 0.0;
    }

    /// <summary>
    /// One round of one-sided Jacobi: group g takes the column pair (p, q) = pairs[pairOffset + 2g, +1] of the
    /// column-major rows×cols matrix w (pairs of a round are disjoint; q ≥ cols marks the idle slot of an odd
    /// column count), forms the 2×2 Gram entries α = ‖w_p‖², β = ‖w_q‖², γ = w_p·w_q and, unless
    /// |γ| ≤ tol·√α·√β, rotates w_p, w_q and the same columns of v (cols×cols) so that they become orthogonal, and
    /// sets rotated[0] = 1. The rotation is the CPU backend's (DenseDouble.RotatePair).
    /// </summary>
    public static void JacobiRound(ArrayView<double> w, ArrayView<double> v, ArrayView<int> pairs, ArrayView<int> rotated,
        int rows, int cols, int pairOffset, double tol)
    {
        var scratch = SharedMemory.Allocate<double>(LinalgGroupSize);
        int tid = Group.IdxX;
        int p = pairs[pairOffset + 2 * Grid.IdxX], q = pairs[pairOffset + 2 * Grid.IdxX + 1];
        if (q >= cols) return;   // the whole group leaves: p and q are the same for all its threads
        long wp = (long)p * rows, wq = (long)q * rows;
        double aa = 0, bb = 0, ab = 0;
        for (int i = tid; i < rows; i += Group.DimX)
        {
            double x = w[wp + i], y = w[wq + i];
            aa += x * x;
            bb += y * y;
            ab += x * y;
        }
        double alpha = GroupSum(scratch, tid, aa);
        double beta = GroupSum(scratch, tid, bb);
        double gamma = GroupSum(scratch, tid, ab);
        if (gamma == 0 || XMath.Abs(gamma) <= tol * XMath.Sqrt(alpha) * XMath.Sqrt(beta)) return;

        double zeta = (beta - alpha) / (2 * gamma);
        double t = XMath.Abs(zeta) > 1e100
            ? 0.5 / zeta
            : (zeta >= 0 ? 1.0 : -1.0) / (XMath.Abs(zeta) + XMath.Sqrt(1 + zeta * zeta));
        double c = 1 / XMath.Sqrt(1 + t * t), s = c * t;
        for (int i = tid; i < rows; i += Group.DimX)
        {
            double x = w[wp + i], y = w[wq + i];
            w[wp + i] = c * x - s * y;
            w[wq + i] = s * x + c * y;
        }
        long vp = (long)p * cols, vq = (long)q * cols;
        for (int i = tid; i < cols; i += Group.DimX)
        {
            double x = v[vp + i], y = v[vq + i];
            v[vp + i] = c * x - s * y;
            v[vq + i] = s * x + c * y;
        }
        if (tid == 0) rotated[0] = 1;   // every writer writes the same value
    }

    /// <summary>norms[g] = ‖column g‖ of the column-major matrix w with <paramref name="rows"/> rows; one group per column.</summary>
    public static void ColumnNorms(ArrayView<double> w, ArrayView<double> norms, int rows)
    {
        var scratch = SharedMemory.Allocate<double>(LinalgGroupSize);
        int tid = Group.IdxX;
        long col = (long)Grid.IdxX * rows;
        double sum = 0;
        for (int i = tid; i < rows; i += Group.DimX) sum += w[col + i] * w[col + i];
        double norm = XMath.Sqrt(GroupSum(scratch, tid, sum));
        if (tid == 0) norms[Grid.IdxX] = norm;
    }

    /// <summary>Column c of the column-major <paramref name="sorted"/> (rows×cols) = column order[c] of w divided by
    /// its norm, or zeros where that norm is at most <see cref="SvdZeroSingularValue"/> (completed afterwards).
    /// One thread per element.</summary>
    public static void NormalizeSortedColumns(Index1D i, ArrayView<double> w, ArrayView<double> norms, ArrayView<int> order,
        ArrayView<double> sorted, int rows)
    {
        int c = i / rows, r = i % rows;
        int j = order[c];
        double norm = norms[j];
        sorted[i] = norm > SvdZeroSingularValue ? w[(long)j * rows + r] / norm : 0.0;
    }

    /// <summary>
    /// Replaces column c of the column-major u (rows rows) by a unit vector orthogonal to its columns 0..c−1 (which
    /// are orthonormal): coordinate vectors e₀, e₁, … are orthogonalized against them by Gram–Schmidt, twice, until
    /// one keeps a norm above 0.5 (the CPU backend's DenseDouble.CompleteOrthonormal). One group.
    /// </summary>
    public static void CompleteColumn(ArrayView<double> u, int rows, int c)
    {
        var scratch = SharedMemory.Allocate<double>(LinalgGroupSize);
        int tid = Group.IdxX;
        long col = (long)c * rows;
        for (int e = 0; ; e++)
        {
            for (int i = tid; i < rows; i += Group.DimX) u[col + i] = i == e % rows ? 1.0 : 0.0;
            for (int pass = 0; pass < 2; pass++)
                for (int o = 0; o < c; o++)
                {
                    long other = (long)o * rows;
                    double dot = 0;
                    for (int i = tid; i < rows; i += Group.DimX) dot += u[other + i] * u[col + i];
                    dot = GroupSum(scratch, tid, dot);
                    for (int i = tid; i < rows; i += Group.DimX) u[col + i] -= dot * u[other + i];
                }
            double sum = 0;
            for (int i = tid; i < rows; i += Group.DimX) sum += u[col + i] * u[col + i];
            double norm = XMath.Sqrt(GroupSum(scratch, tid, sum));
            if (norm > 0.5 || e + 1 > 2 * rows)
            {
                for (int i = tid; i < rows; i += Group.DimX) u[col + i] /= norm;
                return;
            }
        }
    }

    /// <summary>
    /// Rounds the first k columns (length len) of the column-major <paramref name="vectors"/> to float32: column c
    /// becomes column c of dst [len, k] (asRows = 0, the layout of u) or row c of dst [k, len] (asRows = 1, the layout
    /// of vt). One thread per element.
    /// </summary>
    public static void StoreSingularVectors(Index1D i, ArrayView<double> vectors, ArrayView<float> dst, int len, int k, int asRows)
    {
        int c = i / len, e = i % len;
        float value = (float)vectors[i];
        if (asRows != 0) dst[i] = value;
        else dst[(long)e * k + c] = value;
    }

    /// <summary>s[c] = norms[order[c]] rounded to float32.</summary>
    public static void StoreSingularValues(Index1D i, ArrayView<double> norms, ArrayView<int> order, ArrayView<float> s) =>
        s[i] = (float)norms[order[i]];

    private static IEnumerable<(MethodInfo, bool)> LinalgKernels()
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.Static;
        MethodInfo M(string name) => typeof(IlgpuKernels).GetMethod(name, flags)!;
        foreach (var name in new[] { nameof(QrReflector), nameof(QrApplyReflector), nameof(JacobiRound),
                     nameof(ColumnNorms), nameof(CompleteColumn) })
            yield return (M(name), true);
        foreach (var name in new[] { nameof(WidenMatrix), nameof(SetIdentityColumns), nameof(QrStoreQ), nameof(QrStoreR),
                     nameof(TransposeUpperTriangle), nameof(PadSortedColumns), nameof(NormalizeSortedColumns),
                     nameof(StoreSingularVectors), nameof(StoreSingularValues) })
            yield return (M(name), false);
    }
}
