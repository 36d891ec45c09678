namespace TensorLite;

// Kernels of the projected optimizers (Optim/Projected). ReferenceKernels composes both from the generic ops, for a
// backend that does not fuse them; the CPU and ILGPU backends run one pass each.
public partial interface IBackend
{
    /// <summary>
    /// The Adam direction without touching a parameter, for contiguous float32 tensors of equal size:
    /// m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; direction ← (m/bc1)/(sqrt(v/bc2)+eps), with the same rounding
    /// order as <see cref="AdamWStep"/> (sqrt(v)·(1/sqrt(bc2)) + eps). The learning rate and weight decay in
    /// <paramref name="h"/> are ignored.
    /// </summary>
    void AdamDirection(Tensor grad, Tensor m, Tensor v, Tensor direction, AdamWStepParams h);

    /// <summary>In place, for contiguous tensors of equal size: param ← decay·param − stepSize·update
    /// (decoupled weight decay folded into <paramref name="decay"/> = 1 − lr·wd). param and update may be float32 or
    /// bfloat16; the math is float32 and a bfloat16 param is rounded to nearest even.</summary>
    void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize);

    /// <summary><see cref="ApplyUpdate(Tensor, Tensor, float, float)"/> with an explicit write-back rounding for a
    /// half-precision param (ignored for float32).</summary>
    void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize, ParamRounding rounding);
}
