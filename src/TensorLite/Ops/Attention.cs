using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>
    /// Causal multi-head attention softmax(q·kᵀ·scale + causal mask)·v, fused: the [T, T] probabilities are
    /// never stored (backward rebuilds them from one log-sum-exp per row). q: [B, H, T, D]; k, v:
    /// [B, Hkv, T, D] where Hkv divides H (grouped-query attention). Scale defaults to 1/sqrt(D).
    /// </summary>
    public static Tensor CausalAttention(Tensor q, Tensor k, Tensor v, float? scale = null)
    {
        foreach (var (t, name) in new[] { (q, "q"), (k, "k"), (v, "v") })
        {
            RequireFloat32(t, "causal_attention");
            if (t.Rank != 4) throw new ShapeMismatchException($"causal_attention: {name} must be [batch, heads, seq, head_dim], got {ShapeMath.Format(t.Shape)}.");
        }
        RequireSameBackend(q, k, "causal_attention");
        RequireSameBackend(q, v, "causal_attention");
        if (!ShapeMath.SameShape(k.Shape, v.Shape))
            throw new ShapeMismatchException($"causal_attention: k {ShapeMath.Format(k.Shape)} and v {ShapeMath.Format(v.Shape)} differ.");
        if (q.Shape[0] != k.Shape[0] || q.Shape[2] != k.Shape[2] || q.Shape[3] != k.Shape[3] || k.Shape[1] == 0 || q.Shape[1] % k.Shape[1] != 0)
            throw new ShapeMismatchException($"causal_attention: q {ShapeMath.Format(q.Shape)} does not match k/v {ShapeMath.Format(k.Shape)} (same batch, seq and head_dim; kv heads must divide heads).");
        float s = scale ?? 1f / MathF.Sqrt(q.Shape[3]);
        using var qc = q.ContiguousNoGrad();
        using var kc = k.ContiguousNoGrad();
        using var vc = v.ContiguousNoGrad();
        var o = Empty(q.Shape, DType.Float32, q.Backend);
        var lse = Empty(q.Shape[..3], DType.Float32, q.Backend);
        q.Backend.CausalAttentionForward(qc, kc, vc, o, lse, s);
        var result = Recorder.Record(o, "causal_attention", [q, k, v], g =>
        {
            using var qb = q.ContiguousNoGrad();
            using var kb = k.ContiguousNoGrad();
            using var vb = v.ContiguousNoGrad();
            using var gc = g.ContiguousNoGrad();
            var dq = Empty(q.Shape, DType.Float32, q.Backend);
            var dk = Empty(k.Shape, DType.Float32, q.Backend);
            var dv = Empty(v.Shape, DType.Float32, q.Backend);
            q.Backend.CausalAttentionBackward(qb, kb, vb, o, lse, gc, dq, dk, dv, s);
            return [dq, dk, dv];
        }, saved: [lse]);
        lse.Dispose(); // the node holds its memory for as long as backward may need it
        return result;
    }
}
