using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace TensorLite.Ilgpu;

// Householder QR and one-sided Jacobi SVD over the kernels in LinalgKernels.cs. Inputs are contiguous float32 matrices
// (the ops in src/TensorLite/LinearAlgebra make them so); all work happens in double-precision device buffers.
public sealed partial class IlgpuBackend
{
    private readonly LinalgKernelSet _linalg;

    /// <summary>The most one-sided Jacobi sweeps an SVD runs (the CPU backend's limit); a float32 input converges in
    /// far fewer.</summary>
    public const int MaxJacobiSweeps = 60;

    /// <summary>The linear-algebra kernel delegates, loaded once when the backend is created.</summary>
    private sealed class LinalgKernelSet(Accelerator a)
    {
        public int GroupSize = a.AcceleratorType == AcceleratorType.Cuda ? IlgpuKernels.LinalgGroupSize : CpuAcceleratorLinalgGroupSize;

        public readonly Action<Index1D, ArrayView<float>, ArrayView<double>, int, int, int> Widen =
            a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<double>, int, int, int>(IlgpuKernels.WidenMatrix);

        public readonly Action<Index1D, ArrayView<double>, int> Identity =
            a.LoadElementwiseKernel<Index1D, ArrayView<double>, int>(IlgpuKernels.SetIdentityColumns);

        public readonly Action<KernelConfig, ArrayView<double>, ArrayView<double>, int, int> Reflector =
            a.LoadStreamKernel<ArrayView<double>, ArrayView<double>, int, int>(IlgpuKernels.QrReflector);

        public readonly Action<KernelConfig, ArrayView<double>, ArrayView<double>, int, int, int> ApplyReflector =
            a.LoadStreamKernel<ArrayView<double>, ArrayView<double>, int, int, int>(IlgpuKernels.QrApplyReflector);

        public readonly Action<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<float>, int, int> StoreQ =
            a.LoadElementwiseKernel<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<float>, int, int>(IlgpuKernels.QrStoreQ);

        public readonly Action<Index1D, ArrayView<double>, ArrayView<float>, int, int> StoreR =
            a.LoadElementwiseKernel<Index1D, ArrayView<double>, ArrayView<float>, int, int>(IlgpuKernels.QrStoreR);

        public readonly Action<KernelConfig, ArrayView<double>, ArrayView<double>, ArrayView<int>, ArrayView<int>, int, int, int, double> JacobiRound =
            a.LoadStreamKernel<ArrayView<double>, ArrayView<double>, ArrayView<int>, ArrayView<int>, int, int, int, double>(IlgpuKernels.JacobiRound);

        public readonly Action<KernelConfig, ArrayView<double>, ArrayView<double>, int> ColumnNorms =
            a.LoadStreamKernel<ArrayView<double>, ArrayView<double>, int>(IlgpuKernels.ColumnNorms);

        public readonly Action<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<int>, ArrayView<double>, int> NormalizeSorted =
            a.LoadElementwiseKernel<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<int>, ArrayView<double>, int>(IlgpuKernels.NormalizeSortedColumns);

        public readonly Action<KernelConfig, ArrayView<double>, int, int> CompleteColumn =
            a.LoadStreamKernel<ArrayView<double>, int, int>(IlgpuKernels.CompleteColumn);

        public readonly Action<Index1D, ArrayView<double>, ArrayView<float>, int, int, int> StoreVectors =
            a.LoadElementwiseKernel<Index1D, ArrayView<double>, ArrayView<float>, int, int, int>(IlgpuKernels.StoreSingularVectors);

        public readonly Action<Index1D, ArrayView<double>, ArrayView<double>, int, int> TransposeUpper =
            a.LoadElementwiseKernel<Index1D, ArrayView<double>, ArrayView<double>, int, int>(IlgpuKernels.TransposeUpperTriangle);

        public readonly Action<Index1D, ArrayView<double>, ArrayView<int>, ArrayView<double>, int, int> PadSorted =
            a.LoadElementwiseKernel<Index1D, ArrayView<double>, ArrayView<int>, ArrayView<double>, int, int>(IlgpuKernels.PadSortedColumns);

        public readonly Action<Index1D, ArrayView<double>, ArrayView<int>, ArrayView<float>> StoreValues =
            a.LoadElementwiseKernel<Index1D, ArrayView<double>, ArrayView<int>, ArrayView<float>>(IlgpuKernels.StoreSingularValues);
    }

    /// <summary>Threads per group of the QR and Jacobi kernels on ILGPU's CPU accelerator. Each thread of an emulated
    /// group is an OS thread and every barrier a rendezvous of all of them: on the 2-core development machine a 24×24 QR took
    /// ~14 s with 64 threads per group and ~0.2 s with 4. The kernels read the group size at run time.</summary>
    public const int CpuAcceleratorLinalgGroupSize = 4;

    /// <summary>Threads per group of the QR and Jacobi kernels: a power of two up to <see cref="IlgpuKernels.LinalgGroupSize"/>
    /// (the default on CUDA; <see cref="CpuAcceleratorLinalgGroupSize"/> on the CPU accelerator).</summary>
    public int LinalgGroupSize
    {
        get => _linalg.GroupSize;
        set => _linalg.GroupSize = value >= 1 && value <= IlgpuKernels.LinalgGroupSize && (value & (value - 1)) == 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(value), $"A power of two from 1 to {IlgpuKernels.LinalgGroupSize}, got {value}.");
    }

    /// <summary><paramref name="groups"/> groups of <see cref="LinalgGroupSize"/> threads (at most
    /// <see cref="GroupThreadsLimit"/>).</summary>
    private KernelConfig LinalgLaunch(int groups) => new(new Index1D(groups), new Index1D(GroupThreads(_linalg.GroupSize)));

    /// <summary>A device scratch buffer of <paramref name="count"/> doubles. The tensor is typed int64 only to get
    /// 8-byte elements from the pool (and be counted in the memory ledger); kernels see it as double.</summary>
    private Tensor DoubleScratch(long count) => Tensor.Empty([checked((int)count)], DType.Int64, this);

    private Tensor Int32Buffer(int[] values) => Tensor.FromSpan<int>(values, [values.Length], DType.Int32, this);

    public void HouseholderQr(Tensor a, Tensor q, Tensor r)
    {
        RequireFloat32("HouseholderQr", a, q, r);
        int m = a.Shape[0], n = a.Shape[1];
        using var w = DoubleScratch((long)m * n);    // A, then R in its upper triangle
        using var v = DoubleScratch((long)m * n);    // the reflectors, column j from row j on
        using var qd = DoubleScratch((long)m * n);
        var wv = View<double>(w);
        var vv = View<double>(v);
        var qv = View<double>(qd);
        _linalg.Widen(m * n, View<float>(a), wv, m, n, 1);
        Factor(wv, vv, m, n);
        _linalg.Identity(m * n, qv, m);
        ApplyQ(vv, qv, m, n, thinIdentity: true);
        _linalg.StoreQ(m * n, qv, wv, View<float>(q), m, n);
        _linalg.StoreR(n * n, wv, View<float>(r), m, n);
    }

    /// <summary>Householder QR of the column-major m×n (m ≥ n) w in place: R in its upper triangle (diagonal of either
    /// sign), the reflectors in the columns of v. Per column one group forms the reflector and one group per trailing
    /// column applies it.</summary>
    private void Factor(ArrayView<double> w, ArrayView<double> v, int m, int n)
    {
        for (int j = 0; j < n; j++)
        {
            _linalg.Reflector(LinalgLaunch(1), w, v, m, j);
            if (j + 1 < n) _linalg.ApplyReflector(LinalgLaunch(n - j - 1), v, w, m, j, j + 1);
        }
    }

    /// <summary>x ← Q·x = H_0·…·H_{n−1}·x for the n columns of the column-major m-row x, applying the reflectors
    /// backwards. With <paramref name="thinIdentity"/> x is [I; 0]: reflector j only touches rows ≥ j, and the columns
    /// left of j are still unit vectors with their nonzero above row j, so it is applied to columns j.. only.</summary>
    private void ApplyQ(ArrayView<double> v, ArrayView<double> x, int m, int n, bool thinIdentity)
    {
        for (int j = n - 1; j >= 0; j--)
        {
            int first = thinIdentity ? j : 0;
            _linalg.ApplyReflector(LinalgLaunch(n - first), v, x, m, j, first);
        }
    }

    /// <summary>Jacobi sweeps the last <see cref="Svd"/> on this backend ran, the last one rotating nothing (0 for a
    /// single column or row). For tests and diagnostics.</summary>
    public int LastSvdSweeps { get; private set; }

    /// <summary>
    /// The CPU backend's algorithm (DenseDouble.Svd) on the device: the tall orientation T (A, or Aᵀ when m &lt; n;
    /// rows × k) is factored T = Q·R by Householder, then one-sided Jacobi orthogonalizes the columns of the small
    /// k×k X = Rᵀ, X·Vx = W. Rᵀ's columns are already nearly orthogonal, so this takes fewer sweeps than Jacobi on T,
    /// and each rotation touches k-long columns instead of rows-long ones. With σ = the column norms of W,
    /// Rᵀ = (W/σ)·Σ·Vxᵀ, so T = (Q·Vx)·Σ·(W/σ)ᵀ.
    /// </summary>
    public void Svd(Tensor a, Tensor u, Tensor s, Tensor vt)
    {
        RequireFloat32("Svd", a, u, s, vt);
        int m = a.Shape[0], n = a.Shape[1], k = s.Numel;
        bool tall = m >= n;
        int rows = tall ? m : n, cols = tall ? n : m;
        using var t = DoubleScratch((long)rows * cols);
        using var reflectors = DoubleScratch((long)rows * cols);
        using var x = DoubleScratch((long)cols * cols);
        using var vx = DoubleScratch((long)cols * cols);
        var tv = View<double>(t);
        var rv = View<double>(reflectors);
        var xv = View<double>(x);
        var vxv = View<double>(vx);
        // A's row-major buffer read element for element is Aᵀ in column-major order.
        _linalg.Widen(m * n, View<float>(a), tv, m, n, tall ? 1 : 0);
        Factor(tv, rv, rows, cols);
        _linalg.TransposeUpper(cols * cols, tv, xv, rows, cols);
        _linalg.Identity(cols * cols, vxv, cols);
        LastSvdSweeps = cols >= 2 ? JacobiSweeps(xv, vxv, cols, cols) : 0;

        using var norms = DoubleScratch(cols);
        var nv = View<double>(norms);
        _linalg.ColumnNorms(LinalgLaunch(cols), xv, nv, cols);
        var sigma = new double[cols];
        CopyToHost(norms, MemoryMarshal.AsBytes(sigma.AsSpan()));
        // Descending, ties by index (the CPU backend's order).
        var order = Enumerable.Range(0, cols).OrderByDescending(j => sigma[j]).ThenBy(j => j).ToArray();
        using var orderBuffer = Int32Buffer(order);
        var ov = View<int>(orderBuffer);

        // Small side: the columns of W/σ, sorted. A column with σ ≈ 0 has no direction of its own and is completed to
        // an orthonormal set; such columns sort last, so columns 0..c−1 are final when column c is completed.
        using var small = DoubleScratch((long)cols * cols);
        var sv = View<double>(small);
        _linalg.NormalizeSorted(cols * cols, xv, nv, ov, sv, cols);
        for (int c = 0; c < k; c++)
            if (!(sigma[order[c]] > IlgpuKernels.SvdZeroSingularValue))
                _linalg.CompleteColumn(LinalgLaunch(1), sv, cols, c);

        // Big side: Q·[Vx; 0] with Vx's columns sorted (orthonormal whatever the rank).
        using var big = DoubleScratch((long)rows * cols);
        var bv = View<double>(big);
        _linalg.PadSorted(rows * cols, vxv, ov, bv, rows, cols);
        ApplyQ(rv, bv, rows, cols, thinIdentity: false);

        _linalg.StoreValues(k, nv, ov, View<float>(s));
        // Tall (T = A): U = the big side, Vt = the small side as rows. Wide (T = Aᵀ): U = the small side, Vt = the big
        // side as rows. Only the first k columns are stored.
        var (uSide, vSide) = tall ? (bv, sv) : (sv, bv);
        _linalg.StoreVectors(m * k, uSide, View<float>(u), m, k, 0);
        _linalg.StoreVectors(k * n, vSide, View<float>(vt), n, k, 1);
    }

    /// <summary>
    /// One-sided Jacobi on the columns of the column-major rows×cols w, accumulating the rotations into v. A sweep is
    /// cols − 1 (or cols, for an odd count) rounds of the round-robin tournament: each round pairs every column with
    /// another, the pairs are disjoint, and one group per pair orthogonalizes it. Sweeps repeat until one rotates no
    /// pair (every pair orthogonal to √rows·ε relative, the CPU backend's test); the flag is the only value read back
    /// per sweep.
    /// </summary>
    private int JacobiSweeps(ArrayView<double> w, ArrayView<double> v, int rows, int cols)
    {
        int slots = cols + (cols & 1), half = slots / 2, rounds = slots - 1;
        var pairs = new int[rounds * half * 2];
        var pos = Enumerable.Range(0, slots).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            for (int i = 0; i < half; i++)
            {
                int x = pos[i], y = pos[slots - 1 - i];
                pairs[(round * half + i) * 2] = Math.Min(x, y);
                pairs[(round * half + i) * 2 + 1] = Math.Max(x, y);   // the idle slot (cols) is always q
            }
            // Round-robin: slot 0 stays, slots 1..slots−1 rotate by one.
            int last = pos[slots - 1];
            for (int i = slots - 1; i > 1; i--) pos[i] = pos[i - 1];
            pos[1] = last;
        }
        using var pairBuffer = Int32Buffer(pairs);
        using var flag = Tensor.Empty([1], DType.Int32, this);
        var pv = View<int>(pairBuffer);
        var fv = View<int>(flag);
        double tol = Math.Sqrt(rows) * 2.220446049250313e-16;
        Span<int> rotated = stackalloc int[1];
        for (int sweep = 1; sweep <= MaxJacobiSweeps; sweep++)
        {
            Fill(flag, 0);
            for (int round = 0; round < rounds; round++)
                _linalg.JacobiRound(LinalgLaunch(half), w, v, pv, fv, rows, cols, round * half * 2, tol);
            CopyToHost(flag, MemoryMarshal.AsBytes(rotated));
            if (rotated[0] == 0) return sweep;
        }
        return MaxJacobiSweeps;
    }
}
