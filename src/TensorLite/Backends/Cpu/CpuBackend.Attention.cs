using System.Numerics.Tensors;

namespace TensorLite.Backends.Cpu;

// Causal attention one query row at a time: the scores of a row live in a T-float scratch buffer, so
// memory is O(T) per thread instead of O(T²) per head. Work is split over (batch, key/value head)
// groups, which own disjoint slices of dk and dv, so the backward needs no locks.
public sealed unsafe partial class CpuBackend
{
    public void CausalAttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, float scale)
    {
        int batch = q.Shape[0], heads = q.Shape[1], t = q.Shape[2], d = q.Shape[3], kvHeads = k.Shape[1];
        int group = heads / kvHeads;
        nint qp = (nint)Ptr(q), kp = (nint)Ptr(k), vp = (nint)Ptr(v), op = (nint)Ptr(o), lp = (nint)Ptr(lse);
        CpuParallel.For(batch * heads, (long)t * t * d, (start, end) =>
        {
            var scores = new float[t];
            for (int bh = start; bh < end; bh++)
            {
                int b = bh / heads, h = bh % heads, kvh = h / group;
                float* qh = (float*)qp + (long)bh * t * d;
                float* oh = (float*)op + (long)bh * t * d;
                float* kh = (float*)kp + ((long)b * kvHeads + kvh) * t * d;
                float* vh = (float*)vp + ((long)b * kvHeads + kvh) * t * d;
                float* lh = (float*)lp + (long)bh * t;
                for (int i = 0; i < t; i++)
                {
                    var qi = new ReadOnlySpan<float>(qh + (long)i * d, d);
                    var row = scores.AsSpan(0, i + 1);
                    for (int j = 0; j <= i; j++) row[j] = scale * TensorPrimitives.Dot(qi, new ReadOnlySpan<float>(kh + (long)j * d, d));
                    float max = TensorPrimitives.Max(row);
                    TensorPrimitives.Subtract(row, max, row);
                    TensorPrimitives.Exp(row, row);
                    float sum = TensorPrimitives.Sum(row);
                    lh[i] = max + MathF.Log(sum);
                    var oi = new Span<float>(oh + (long)i * d, d);
                    oi.Clear();
                    float inv = 1f / sum;
                    for (int j = 0; j <= i; j++)
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(vh + (long)j * d, d), row[j] * inv, oi, oi);
                }
            }
        });
    }

    public void CausalAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO,
        Tensor dq, Tensor dk, Tensor dv, float scale)
    {
        int batch = q.Shape[0], heads = q.Shape[1], t = q.Shape[2], d = q.Shape[3], kvHeads = k.Shape[1];
        int group = heads / kvHeads;
        nint qp = (nint)Ptr(q), kp = (nint)Ptr(k), vp = (nint)Ptr(v), op = (nint)Ptr(o), lp = (nint)Ptr(lse);
        nint dop = (nint)Ptr(dO), dqp = (nint)Ptr(dq), dkp = (nint)Ptr(dk), dvp = (nint)Ptr(dv);
        CpuParallel.For(batch * kvHeads, (long)group * t * t * d * 2, (start, end) =>
        {
            var ds = new float[t];
            for (int bkv = start; bkv < end; bkv++)
            {
                int b = bkv / kvHeads, kvh = bkv % kvHeads;
                float* kh = (float*)kp + (long)bkv * t * d;
                float* vh = (float*)vp + (long)bkv * t * d;
                float* dkh = (float*)dkp + (long)bkv * t * d;
                float* dvh = (float*)dvp + (long)bkv * t * d;
                new Span<float>(dkh, t * d).Clear();
                new Span<float>(dvh, t * d).Clear();
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                {
                    long bh = (long)b * heads + h;
                    float* qh = (float*)qp + bh * t * d, oh = (float*)op + bh * t * d;
                    float* doh = (float*)dop + bh * t * d, dqh = (float*)dqp + bh * t * d;
                    float* lh = (float*)lp + bh * t;
                    for (int i = 0; i < t; i++)
                    {
                        var qi = new ReadOnlySpan<float>(qh + (long)i * d, d);
                        var doi = new ReadOnlySpan<float>(doh + (long)i * d, d);
                        float rowDot = TensorPrimitives.Dot(doi, new ReadOnlySpan<float>(oh + (long)i * d, d));
                        var dqi = new Span<float>(dqh + (long)i * d, d);
                        dqi.Clear();
                        for (int j = 0; j <= i; j++)
                        {
                            var kj = new ReadOnlySpan<float>(kh + (long)j * d, d);
                            var vj = new ReadOnlySpan<float>(vh + (long)j * d, d);
                            float p = MathF.Exp(scale * TensorPrimitives.Dot(qi, kj) - lh[i]);
                            float dp = TensorPrimitives.Dot(doi, vj);
                            float dsij = p * (dp - rowDot) * scale;
                            // dv_j += p · dO_i ; dk_j += ds · q_i ; dq_i += ds · k_j
                            var dvj = new Span<float>(dvh + (long)j * d, d);
                            TensorPrimitives.MultiplyAdd(doi, p, dvj, dvj);
                            var dkj = new Span<float>(dkh + (long)j * d, d);
                            TensorPrimitives.MultiplyAdd(qi, dsij, dkj, dkj);
                            TensorPrimitives.MultiplyAdd(kj, dsij, dqi, dqi);
                        }
                    }
                }
            }
        });
    }
}
