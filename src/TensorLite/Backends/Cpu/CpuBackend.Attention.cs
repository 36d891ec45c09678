using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

// Causal attention in query blocks of QueryBlock rows: the scores of one block against the keys it may
// see ([QueryBlock, T] floats of scratch per thread) are computed with the packed GEMM, masked,
// exponentiated and multiplied into V, so the [T, T] matrix of a head is never held whole. Backward
// recomputes each block's probabilities from the saved row log-sum-exp (flash-attention style). Work is
// split over (batch, key/value head) groups in backward, which own disjoint slices of dk and dv.
internal sealed unsafe partial class CpuBackend
{
    private const int QueryBlock = 64;

    public void CausalAttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, float scale)
    {
        int batch = q.Shape[0], heads = q.Shape[1], t = q.Shape[2], d = q.Shape[3], kvHeads = k.Shape[1];
        int group = heads / kvHeads;
        nint qp = (nint)Ptr(q), kp = (nint)Ptr(k), vp = (nint)Ptr(v), op = (nint)Ptr(o), lp = (nint)Ptr(lse);
        CpuParallel.For(batch * heads, (long)t * t * d, (start, end) =>
        {
            float* scores = (float*)NativeMemory.Alloc((nuint)((long)QueryBlock * t * sizeof(float)));
            try
            {
                for (int bh = start; bh < end; bh++)
                {
                    int b = bh / heads, kvh = bh % heads / group;
                    float* kh = (float*)kp + ((long)b * kvHeads + kvh) * t * d;
                    float* vh = (float*)vp + ((long)b * kvHeads + kvh) * t * d;
                    for (int i0 = 0; i0 < t; i0 += QueryBlock)
                    {
                        int rows = Math.Min(QueryBlock, t - i0), keys = i0 + rows;
                        float* qb = (float*)qp + ((long)bh * t + i0) * d;
                        CpuGemm.Sgemm(false, true, rows, keys, d, scale, qb, d, kh, d, 0f, scores, keys);
                        for (int r = 0; r < rows; r++)
                        {
                            var row = new Span<float>(scores + (long)r * keys, keys);
                            int visible = i0 + r + 1;
                            var live = row[..visible];
                            float max = TensorPrimitives.Max(live);
                            TensorPrimitives.Subtract(live, max, live);
                            TensorPrimitives.Exp(live, live);
                            float sum = TensorPrimitives.Sum(live);
                            TensorPrimitives.Multiply(live, 1f / sum, live);
                            row[visible..].Clear();
                            ((float*)lp)[(long)bh * t + i0 + r] = max + MathF.Log(sum);
                        }
                        CpuGemm.Sgemm(false, false, rows, d, keys, 1f, scores, keys, vh, d, 0f, (float*)op + ((long)bh * t + i0) * d, d);
                    }
                }
            }
            finally
            {
                NativeMemory.Free(scores);
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
            long scratch = (long)QueryBlock * t;
            float* p = (float*)NativeMemory.Alloc((nuint)(2 * scratch * sizeof(float)));
            float* dp = p + scratch;
            try
            {
                for (int bkv = start; bkv < end; bkv++)
                {
                    int b = bkv / kvHeads, kvh = bkv % kvHeads;
                    float* kh = (float*)kp + (long)bkv * t * d, vh = (float*)vp + (long)bkv * t * d;
                    float* dkh = (float*)dkp + (long)bkv * t * d, dvh = (float*)dvp + (long)bkv * t * d;
                    new Span<float>(dkh, t * d).Clear();
                    new Span<float>(dvh, t * d).Clear();
                    for (int h = kvh * group; h < (kvh + 1) * group; h++)
                    {
                        long bh = (long)b * heads + h;
                        for (int i0 = 0; i0 < t; i0 += QueryBlock)
                        {
                            int rows = Math.Min(QueryBlock, t - i0), keys = i0 + rows;
                            long rowBase = (bh * t + i0) * d;
                            float* qb = (float*)qp + rowBase, ob = (float*)op + rowBase;
                            float* dob = (float*)dop + rowBase, dqb = (float*)dqp + rowBase;
                            // P = exp(scale·q·kᵀ − lse) (zero above the diagonal); dP = dO·vᵀ.
                            CpuGemm.Sgemm(false, true, rows, keys, d, scale, qb, d, kh, d, 0f, p, keys);
                            CpuGemm.Sgemm(false, true, rows, keys, d, 1f, dob, d, vh, d, 0f, dp, keys);
                            for (int r = 0; r < rows; r++)
                            {
                                int visible = i0 + r + 1;
                                var pr = new Span<float>(p + (long)r * keys, keys);
                                var dpr = new Span<float>(dp + (long)r * keys, keys);
                                var live = pr[..visible];
                                TensorPrimitives.Subtract(live, ((float*)lp)[bh * t + i0 + r], live);
                                TensorPrimitives.Exp(live, live);
                                pr[visible..].Clear();
                                // dS = P ∘ (dP − rowsum(dO ∘ O)) · scale, written over dP.
                                float rowDot = TensorPrimitives.Dot(new ReadOnlySpan<float>(dob + (long)r * d, d), new ReadOnlySpan<float>(ob + (long)r * d, d));
                                TensorPrimitives.Subtract(dpr, rowDot, dpr);
                                TensorPrimitives.Multiply(dpr, pr, dpr);
                                TensorPrimitives.Multiply(dpr, scale, dpr);
                            }
                            CpuGemm.Sgemm(false, false, rows, d, keys, 1f, dp, keys, kh, d, 0f, dqb, d);   // dQ = dS·K
                            CpuGemm.Sgemm(true, false, keys, d, rows, 1f, dp, keys, qb, d, 1f, dkh, d);    // dK += dSᵀ·Q
                            CpuGemm.Sgemm(true, false, keys, d, rows, 1f, p, keys, dob, d, 1f, dvh, d);    // dV += Pᵀ·dO
                        }
                    }
                }
            }
            finally
            {
                NativeMemory.Free(p);
            }
        });
    }
}
