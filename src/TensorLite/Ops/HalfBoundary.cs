namespace TensorLite;

// Half-precision activations at the boundary of the float32 ops (RMSNorm, RoPE, attention, softmax, cross-entropy,
// the unary ops): an op given bfloat16 or float16 inputs widens them into float32 temporaries, runs the backend's
// float32 kernel, and rounds the result once into the input's dtype. Backward does the same with the saved half
// tensors and the incoming gradient, and each input's gradient comes back in that input's dtype. So every backend
// (CPU, ILGPU, the planner's meta backend) runs bf16 activations with the kernels it already has, the graph saves
// only the half-precision tensors, and the float32 copies live for one kernel call.
public sealed partial class Tensor
{
    /// <summary>The data of this tensor as a contiguous float32 tensor for a kernel, without autograd: a view when it
    /// already is one, else a widened (or compacted) copy that the caller disposes.</summary>
    internal Tensor Float32ContiguousNoGrad()
    {
        if (DType == DType.Float32) return ContiguousNoGrad();
        var wide = Empty(Shape, DType.Float32, Backend);
        Backend.Copy(this, wide);
        return wide;
    }

    /// <summary>A float32 kernel result rounded to nearest even into <paramref name="dtype"/>, without autograd; the
    /// float32 tensor is disposed when it was converted (returned as it is when <paramref name="dtype"/> is float32).</summary>
    internal static Tensor? NarrowedNoGrad(Tensor? wide, DType dtype)
    {
        if (wide == null || wide.DType == dtype) return wide;
        var narrow = Empty(wide.Shape, dtype, wide.Backend);
        wide.Backend.Copy(wide, narrow);
        wide.Dispose();
        return narrow;
    }
}
