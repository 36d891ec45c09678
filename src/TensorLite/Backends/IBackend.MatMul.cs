namespace TensorLite;

// The GEMM kernel of Ops/MatMul.cs.
public partial interface IBackend
{
    /// <summary>c = alpha·a·b + beta·c over the batch dimensions. a is [..., m, k], b is [..., k, n], both
    /// already broadcast to c's batch shape; each may be row-major or transposed in its last two dims.</summary>
    void MatMul(Tensor a, Tensor b, Tensor c, float alpha, float beta);
}
