namespace TensorLite.Backends.Meta;

// The members of IBackend.Projected.cs: nothing is computed.
internal sealed partial class MetaBackend
{
    public void AdamDirection(Tensor grad, Tensor m, Tensor v, Tensor direction, AdamWStepParams h) { }
    public void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize) { }
    public void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize, ParamRounding rounding) { }
}
