using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>
    /// Causal multi-head attention softmax(q·kᵀ·scale + causal mask)·v, fused: the [T, T] probabilities are
    /// never stored (backward rebuilds them from one log-sum-exp per row). q: [B, H, T, D]; k, v:
    /// [B, Hkv, T, D] where Hkv divides H (grouped-query attention). Scale defaults to 1/sqrt(D).
    /// q, k and v may be views (float32 ones whose last dim is contiguous are read in place, any other strides).
    /// q, k and v may be float32, bfloat16 or float16: half-precision inputs run in float32 on widened copies, the output has
    /// q's dtype and each gradient its input's dtype. The graph keeps q, k, v and the output in their own dtypes (the
    /// backward widens them again) plus the float32 log-sum-exp rows.
    /// </summary>
    public static Tensor CausalAttention(Tensor q, Tensor k, Tensor v, float? scale = null)
    {
        foreach (var (t, name) in new[] { (q, "q"), (k, "k"), (v, "v") })
        {
            RequireFloatingPoint(t, "causal_attention");
            if (t.Rank != 4) throw new ShapeMismatchException($"causal_attention: {name} must be [batch, heads, seq, head_dim], got {ShapeMath.Format(t.Shape)}.");
        }
        RequireSameBackend(q, k, "causal_attention");
        RequireSameBackend(q, v, "causal_attention");
        if (!ShapeMath.SameShape(k.Shape, v.Shape))
            throw new ShapeMismatchException($"causal_attention: k {ShapeMath.Format(k.Shape)} and v {ShapeMath.Format(v.Shape)} differ.");
        if (q.Shape[0] != k.Shape[0] || q.Shape[2] != k.Shape[2] || q.Shape[3] != k.Shape[3] || k.Shape[1] == 0 || q.Shape[1] % k.Shape[1] != 0)
            throw new ShapeMismatchException($"causal_attention: q {ShapeMath.Format(q.Shape)} does not match k/v {ShapeMath.Format(k.Shape)} (same batch, seq and head_dim; kv heads must divide heads).");
        float s = scale ?? 1f / MathF.Sqrt(q.Shape[3]);
        var backend = q.Backend;
        var o32 = Empty(q.Shape, DType.Float32, backend);
        var lse = Empty(q.Shape[..3], DType.Float32, backend);
        using (var q32 = q.Float32RowsNoGrad())
        using (var k32 = k.Float32RowsNoGrad())
        using (var v32 = v.Float32RowsNoGrad())
            backend.CausalAttentionForward(q32, k32, v32, o32, lse, s);
        var o = NarrowedNoGrad(o32, q.DType)!;
        var result = Recorder.Record(o, "causal_attention", [q, k, v], g =>
        {
            using var qb = q.Float32RowsNoGrad();
            using var kb = k.Float32RowsNoGrad();
            using var vb = v.Float32RowsNoGrad();
            using var ob = o.Float32RowsNoGrad();
            using var gc = g.Float32RowsNoGrad();
            var dq = Empty(q.Shape, DType.Float32, backend);
            var dk = Empty(k.Shape, DType.Float32, backend);
            var dv = Empty(v.Shape, DType.Float32, backend);
            backend.CausalAttentionBackward(qb, kb, vb, ob, lse, gc, dq, dk, dv, s);
            return [NarrowedNoGrad(dq, q.DType), NarrowedNoGrad(dk, k.DType), NarrowedNoGrad(dv, v.DType)];
        }, saved: [lse]);
        lse.Dispose(); // the node holds its memory for as long as backward may need it
        return result;
    }

    /// <summary>This tensor as float32 rows for the attention kernels, which take any strides but a contiguous last
    /// dim: a view when it already is that (the model's v and its output gradient are transposed views), else a
    /// widened or compacted copy. The caller disposes it.</summary>
    private Tensor Float32RowsNoGrad() =>
        DType == DType.Float32 && (Rank == 0 || _strides[^1] == 1) ? Alias() : Float32ContiguousNoGrad();
}
