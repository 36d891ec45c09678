using TensorLite.Autograd;

namespace TensorLite;

// Kernels of the projected optimizers (Optim/Projected). Both have default implementations built from the generic
// ops, so a backend that does not fuse them still works; the CPU backend overrides them with one pass each.
public partial interface IBackend
{
    /// <summary>
    /// The Adam direction without touching a parameter, for contiguous float32 tensors of equal size:
    /// m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; direction ← (m/bc1)/(sqrt(v/bc2)+eps), with the same rounding
    /// order as <see cref="AdamWStep"/> (sqrt(v)·(1/sqrt(bc2)) + eps). The learning rate and weight decay in
    /// <paramref name="h"/> are ignored.
    /// </summary>
    void AdamDirection(Tensor grad, Tensor m, Tensor v, Tensor direction, AdamWStepParams h)
    {
        using var noGrad = GradMode.NoGrad();
        using (var m1 = m * h.Beta1)
        using (var g1 = grad * (1f - h.Beta1))
        using (var mn = m1 + g1) Copy(mn, m);
        using (var g2 = grad.Square())
        using (var v1 = v * h.Beta2)
        using (var g3 = g2 * (1f - h.Beta2))
        using (var vn = v1 + g3) Copy(vn, v);
        using var sq = v.Sqrt();
        using var denom = sq.Affine(1f / MathF.Sqrt(h.BiasCorrection2), h.Eps);
        using var num = m * (1f / h.BiasCorrection1);
        using var d = num / denom;
        Copy(d, direction);
    }

    /// <summary>In place, for contiguous tensors of equal size: param ← decay·param − stepSize·update
    /// (decoupled weight decay folded into <paramref name="decay"/> = 1 − lr·wd). param and update may be float32 or
    /// bfloat16; the math is float32 and a bfloat16 param is rounded to nearest even.</summary>
    void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize) =>
        ApplyUpdate(param, update, decay, stepSize, ParamRounding.Nearest);

    /// <summary><see cref="ApplyUpdate(Tensor, Tensor, float, float)"/> with an explicit write-back rounding for a
    /// half-precision param (ignored for float32). This default supports only nearest rounding.</summary>
    void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize, ParamRounding rounding)
    {
        if (param.DType != DType.Float32 && rounding.Mode != ParamRoundingMode.Nearest)
            throw new NotSupportedException($"Backend {Name} has no stochastic-rounding ApplyUpdate kernel.");
        using var noGrad = GradMode.NoGrad();
        using var p32 = param.DType == DType.Float32 ? param.Alias() : param.To(DType.Float32);
        using var u32 = update.DType == DType.Float32 ? update.Alias() : update.To(DType.Float32);
        using var a = p32 * decay;
        using var b = u32 * stepSize;
        using var c = a - b;
        Copy(c, param);
    }
}
