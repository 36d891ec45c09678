namespace TensorLite;

public partial interface IBackend
{
    /// <summary>
    /// Causal scaled-dot-product attention without materializing the [T, T] score matrix.
    /// q, o: [B, H, T, D]; k, v: [B, Hkv, T, D] with H a multiple of Hkv (grouped-query attention:
    /// query head h reads key/value head h / (H / Hkv)); lse: [B, H, T] receives each row's
    /// log-sum-exp of scaled scores, which is all the backward pass needs to rebuild the probabilities.
    /// The inputs (q, k, v here; also o and dO in backward) are float32 with a contiguous last dim and any other
    /// strides (the model's v is a transposed view); o, lse and the gradients are fresh contiguous tensors.
    /// </summary>
    void CausalAttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, float scale);

    /// <summary>Gradients of <see cref="CausalAttentionForward"/>: dq like q, dk and dv like k and v (overwritten).</summary>
    void CausalAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO,
        Tensor dq, Tensor dk, Tensor dv, float scale);
}
