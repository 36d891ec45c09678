namespace TensorLite;

// Kernels of the dense linear-algebra ops (LinearAlgebra/Linalg.cs). Inputs are contiguous float32 matrices that the op
// has already checked; outputs are contiguous float32 tensors the op allocated. Backends may compute internally in
// higher precision (the CPU backend uses double).
public partial interface IBackend
{
    /// <summary>Thin Householder QR of a [m, n] with m ≥ n: q [m, n] gets orthonormal columns and r [n, n] the upper
    /// triangular factor (zeros below the diagonal) with a non-negative diagonal, so that a = q·r.</summary>
    void HouseholderQr(Tensor a, Tensor q, Tensor r);

    /// <summary>Exact thin SVD of a [m, n] truncated to its k leading triplets: u [m, k] and vt [k, n] get
    /// orthonormal singular vectors (columns of u, rows of vt), s [k] the singular values in descending order,
    /// with k ≤ min(m, n) taken from s's length.</summary>
    void Svd(Tensor a, Tensor u, Tensor s, Tensor vt);
}
