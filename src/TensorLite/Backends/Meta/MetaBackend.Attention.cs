namespace TensorLite.Backends.Meta;

// The members of IBackend.Attention.cs: nothing is computed.
internal sealed partial class MetaBackend
{
    public void CausalAttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, float scale) { }
    public void CausalAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO,
        Tensor dq, Tensor dk, Tensor dv, float scale) { }
}
