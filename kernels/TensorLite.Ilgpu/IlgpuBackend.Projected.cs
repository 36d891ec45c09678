namespace TensorLite.Ilgpu;

// The projected optimizers' members (IBackend.Projected.cs) over the kernels in OptimKernels.cs.
public sealed partial class IlgpuBackend
{
    public void AdamDirection(Tensor grad, Tensor m, Tensor v, Tensor direction, AdamWStepParams h)
    {
        RequireFloat32Operands("AdamDirection", [grad, m, v, direction]);
        if (grad.Numel == 0) return;
        _optim.AdamDirection(grad.Numel, View<float>(grad), View<float>(m), View<float>(v), View<float>(direction), AdamParams(h));
    }

    public void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize) =>
        ApplyUpdate(param, update, decay, stepSize, ParamRounding.Nearest);

    public void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize, ParamRounding rounding)
    {
        var format = UpdateFormat(param, update, rounding, "apply_update");
        if (param.Numel == 0) return;
        _optim.ApplyUpdate(param.Numel, Bytes(param), Bytes(update), format, decay, stepSize);
    }
}
