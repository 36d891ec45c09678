namespace TensorLite.Backends.Meta;

// The members of IBackend.MatMul.cs: nothing is computed.
internal sealed partial class MetaBackend
{
    public void MatMul(Tensor a, Tensor b, Tensor c, float alpha, float beta) { }
}
