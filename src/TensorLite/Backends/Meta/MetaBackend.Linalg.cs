namespace TensorLite.Backends.Meta;

// The members of IBackend.Linalg.cs: nothing is computed.
internal sealed partial class MetaBackend
{
    public void HouseholderQr(Tensor a, Tensor q, Tensor r) { }
    public void Svd(Tensor a, Tensor u, Tensor s, Tensor vt) { }
}
