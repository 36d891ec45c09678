using System.Numerics.Tensors;
using TensorLite.Backends.Cpu;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// Pins the CPU attention kernels (keys and values packed once per group, per-panel causal tiles, fused softmax) to
/// the implementation they replaced — one Sgemm per 64-row query block and product, separate softmax passes — at
/// shapes where the packed GEMM path does the work (head_dim 64, several query blocks, a partial last block, grouped
/// heads), and checks that strided rows read in place give the same results as contiguous copies.
/// </summary>
public unsafe class CpuAttentionKernelTests
{
    private const int Block = 64;

    private static Tensor[] Inputs(int batch, int heads, int kvHeads, int t, int d, ulong seed)
    {
        var g = new Generator(seed);
        return [Tensor.RandN([batch, heads, t, d], g), Tensor.RandN([batch, kvHeads, t, d], g),
                Tensor.RandN([batch, kvHeads, t, d], g), Tensor.RandN([batch, heads, t, d], g)];
    }

    /// <summary>The earlier forward pass: per (batch, head) and 64-row block, Sgemm scores, softmax, Sgemm into V.</summary>
    private static void ReferenceForward(float* q, float* k, float* v, float* o, float* lse, int batch, int heads, int kvHeads, int t, int d, float scale)
    {
        var scores = new float[Block * t];
        fixed (float* sp = scores)
            for (int bh = 0; bh < batch * heads; bh++)
            {
                int b = bh / heads, kvh = bh % heads / (heads / kvHeads);
                float* kh = k + ((long)b * kvHeads + kvh) * t * d, vh = v + ((long)b * kvHeads + kvh) * t * d;
                for (int i0 = 0; i0 < t; i0 += Block)
                {
                    int rows = Math.Min(Block, t - i0), keys = i0 + rows;
                    CpuGemm.Sgemm(false, true, rows, keys, d, scale, q + ((long)bh * t + i0) * d, d, kh, d, 0f, sp, keys);
                    for (int r = 0; r < rows; r++)
                    {
                        var row = new Span<float>(sp + r * keys, keys);
                        int visible = i0 + r + 1;
                        var live = row[..visible];
                        float max = TensorPrimitives.Max(live);
                        TensorPrimitives.Subtract(live, max, live);
                        TensorPrimitives.Exp(live, live);
                        float sum = TensorPrimitives.Sum(live);
                        TensorPrimitives.Multiply(live, 1f / sum, live);
                        row[visible..].Clear();
                        lse[(long)bh * t + i0 + r] = max + MathF.Log(sum);
                    }
                    CpuGemm.Sgemm(false, false, rows, d, keys, 1f, sp, keys, vh, d, 0f, o + ((long)bh * t + i0) * d, d);
                }
            }
    }

    /// <summary>The earlier backward pass: five Sgemm products per block, probabilities rebuilt from lse.</summary>
    private static void ReferenceBackward(float* q, float* k, float* v, float* o, float* lse, float* dO, float* dq, float* dk, float* dv,
        int batch, int heads, int kvHeads, int t, int d, float scale)
    {
        int group = heads / kvHeads;
        var p = new float[Block * t];
        var dp = new float[Block * t];
        new Span<float>(dk, batch * kvHeads * t * d).Clear();
        new Span<float>(dv, batch * kvHeads * t * d).Clear();
        fixed (float* pp = p, dpp = dp)
            for (int bkv = 0; bkv < batch * kvHeads; bkv++)
            {
                int b = bkv / kvHeads, kvh = bkv % kvHeads;
                float* kh = k + (long)bkv * t * d, vh = v + (long)bkv * t * d, dkh = dk + (long)bkv * t * d, dvh = dv + (long)bkv * t * d;
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                {
                    long bh = (long)b * heads + h;
                    for (int i0 = 0; i0 < t; i0 += Block)
                    {
                        int rows = Math.Min(Block, t - i0), keys = i0 + rows;
                        long at = (bh * t + i0) * d;
                        CpuGemm.Sgemm(false, true, rows, keys, d, scale, q + at, d, kh, d, 0f, pp, keys);
                        CpuGemm.Sgemm(false, true, rows, keys, d, 1f, dO + at, d, vh, d, 0f, dpp, keys);
                        for (int r = 0; r < rows; r++)
                        {
                            int visible = i0 + r + 1;
                            var pr = new Span<float>(pp + r * keys, keys);
                            var dpr = new Span<float>(dpp + r * keys, keys);
                            var live = pr[..visible];
                            TensorPrimitives.Subtract(live, lse[bh * t + i0 + r], live);
                            TensorPrimitives.Exp(live, live);
                            pr[visible..].Clear();
                            float rowDot = TensorPrimitives.Dot(new ReadOnlySpan<float>(dO + at + r * d, d), new ReadOnlySpan<float>(o + at + r * d, d));
                            TensorPrimitives.Subtract(dpr, rowDot, dpr);
                            TensorPrimitives.Multiply(dpr, pr, dpr);
                            TensorPrimitives.Multiply(dpr, scale, dpr);
                        }
                        CpuGemm.Sgemm(false, false, rows, d, keys, 1f, dpp, keys, kh, d, 0f, dq + at, d);
                        CpuGemm.Sgemm(true, false, keys, d, rows, 1f, dpp, keys, q + at, d, 1f, dkh, d);
                        CpuGemm.Sgemm(true, false, keys, d, rows, 1f, pp, keys, dO + at, d, 1f, dvh, d);
                    }
                }
            }
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double norm = Math.Sqrt(expected.Sum(x => (double)x * x) / expected.Length);
        for (int i = 0; i < expected.Length; i++)
            Approx.Close(expected[i], actual[i], 2e-5 * norm + 1e-6 * Math.Abs(expected[i]), $"{what}[{i}]");
    }

    [Theory]
    [InlineData(1, 2, 1, 200, 64)]   // grouped heads, 4 query blocks, a 8-row last block
    [InlineData(2, 2, 2, 131, 40)]   // head_dim not a multiple of the micro-panel width, odd sequence
    public void ForwardAndBackward_MatchTheBlockwiseSgemmImplementation(int batch, int heads, int kvHeads, int t, int d)
    {
        var backend = Tensor.Zeros([1]).Backend;
        var x = Inputs(batch, heads, kvHeads, t, d, 11);
        Tensor q = x[0], k = x[1], v = x[2], dO = x[3];
        float scale = 1f / MathF.Sqrt(d);
        float[] qa = q.ToArray(), ka = k.ToArray(), va = v.ToArray(), doa = dO.ToArray();
        var o = new float[qa.Length];
        var lse = new float[batch * heads * t];
        float[] dq = new float[qa.Length], dk = new float[ka.Length], dv = new float[ka.Length];
        fixed (float* qp = qa, kp = ka, vp = va, op = o, lp = lse, dop = doa, dqp = dq, dkp = dk, dvp = dv)
        {
            ReferenceForward(qp, kp, vp, op, lp, batch, heads, kvHeads, t, d, scale);
            ReferenceBackward(qp, kp, vp, op, lp, dop, dqp, dkp, dvp, batch, heads, kvHeads, t, d, scale);
        }

        using var o2 = Tensor.Empty(q.Shape);
        using var lse2 = Tensor.Empty([batch, heads, t]);
        backend.CausalAttentionForward(q, k, v, o2, lse2, scale);
        AssertClose(o, o2.ToArray(), "o");
        AssertClose(lse, lse2.ToArray(), "lse");

        // Backward from the reference's o and lse, so that only the backward kernels are compared.
        using var oRef = Tensor.FromArray(o, q.Shape.ToArray());
        using var lseRef = Tensor.FromArray(lse, batch, heads, t);
        using var dq2 = Tensor.Empty(q.Shape);
        using var dk2 = Tensor.Empty(k.Shape);
        using var dv2 = Tensor.Empty(v.Shape);
        backend.CausalAttentionBackward(q, k, v, oRef, lseRef, dO, dq2, dk2, dv2, scale);
        AssertClose(dq, dq2.ToArray(), "dq");
        AssertClose(dk, dk2.ToArray(), "dk");
        AssertClose(dv, dv2.ToArray(), "dv");
    }

    [Fact]
    public void TheOp_ReadsTransposedViewsInPlace_WithTheSameGradients()
    {
        // The model's v is a [B, T, H, D] projection viewed as [B, H, T, D]; the op now hands that view to the kernel.
        var g = new Generator(8);
        var stored = Enumerable.Range(0, 3).Select(_ => Tensor.RandN([2, 70, 2, 16], g).RequireGrad()).ToArray();
        var copies = stored.Select(s => Tensor.FromArray(s.Transpose(1, 2).Contiguous().ToArray(), 2, 2, 70, 16).RequireGrad()).ToArray();
        var seed = Tensor.RandN([2, 2, 70, 16], g);
        var viewed = stored.Select(s => s.Transpose(1, 2)).ToArray();
        var a = Tensor.CausalAttention(viewed[0], viewed[1], viewed[2]);
        var b = Tensor.CausalAttention(copies[0], copies[1], copies[2]);
        Assert.Equal(b.ToArray(), a.ToArray());
        a.Backward(seed);
        b.Backward(seed);
        for (int i = 0; i < 3; i++)
            Assert.Equal(copies[i].Grad!.ToArray(), stored[i].Grad!.Transpose(1, 2).ToArray());
    }

    [Fact]
    public void StridedRows_AreReadAndWrittenInPlace()
    {
        // [B, T, H, D] storage viewed as [B, H, T, D] (the model's heads before any copy), outputs likewise.
        int batch = 2, heads = 3, t = 70, d = 16;
        var g = new Generator(5);
        var stored = Enumerable.Range(0, 4).Select(_ => Tensor.RandN([batch, t, heads, d], g)).ToArray();
        var views = stored.Select(s => s.Transpose(1, 2)).ToArray();
        var packed = views.Select(s => s.Contiguous()).ToArray();
        var backend = views[0].Backend;
        float scale = 0.3f;

        Tensor[] Run(Tensor[] x, bool strided)
        {
            Tensor Out(int[] shape) => strided ? Tensor.Empty([batch, t, heads, d]).Transpose(1, 2) : Tensor.Empty(shape);
            var o = Out([batch, heads, t, d]);
            var lse = Tensor.Empty([batch, heads, t]);
            backend.CausalAttentionForward(x[0], x[1], x[2], o, lse, scale);
            Tensor dq = Out([batch, heads, t, d]), dk = Out([batch, heads, t, d]), dv = Out([batch, heads, t, d]);
            backend.CausalAttentionBackward(x[0], x[1], x[2], o, lse, x[3], dq, dk, dv, scale);
            return [o, lse, dq, dk, dv];
        }

        var a = Run(views, strided: true);
        var b = Run(packed, strided: false);
        for (int i = 0; i < a.Length; i++) Assert.Equal(b[i].ToArray(), a[i].ToArray());
    }
}
