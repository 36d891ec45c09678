namespace TensorLite;

public partial interface IBackend
{
    /// <summary>
    /// One fused, in-place AdamW update of contiguous tensors of equal size:
    /// m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p − lr·wd·p − lr·(m/bc1)/(sqrt(v/bc2)+eps).
    /// m and v are float32; param and grad may be float32 or bfloat16 (the CPU backend also takes float16). The math
    /// is float32; a half-precision param is written back with <see cref="AdamWStepParams.Rounding"/>.
    /// </summary>
    void AdamWStep(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStepParams h);

    /// <summary>Σ x² of a contiguous float32/bfloat16/float16 tensor, accumulated in at least float32 precision per
    /// chunk and in double across chunks (gradient norms). <see cref="ReferenceKernels.SumOfSquares"/> composes it
    /// from the generic ops.</summary>
    double SumOfSquares(Tensor x);
}
