namespace TensorLite.Backends.Meta;

// The members of IBackend.Optim.cs: nothing is computed.
internal sealed partial class MetaBackend
{
    public void AdamWStep(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStepParams h) { }
    public double SumOfSquares(Tensor x) => 0;
}
