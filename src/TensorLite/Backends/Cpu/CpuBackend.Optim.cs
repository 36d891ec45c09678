using System.Numerics;
using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

internal sealed unsafe partial class CpuBackend
{
    public void AdamWStep(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStepParams h)
    {
        if (m.DType != DType.Float32 || v.DType != DType.Float32)
            throw new DTypeMismatchException($"AdamW moments must be float32, got {m.Describe()} and {v.Describe()}.");
        RequireFloating(param, "adamw");
        RequireFloating(grad, "adamw");
        nint mp = (nint)Ptr(m), vp = (nint)Ptr(v);
        if (param.DType == DType.Float32 && grad.DType == DType.Float32)
        {
            nint pp = (nint)Ptr(param), gp = (nint)Ptr(grad);
            CpuParallel.For(param.Numel, 8, (start, end) =>
                AdamWRange((float*)pp, (float*)gp, (float*)mp, (float*)vp, start, end, h));
            return;
        }
        // Half-precision param and/or grad: the float32 kernel runs on widened chunks (so a nearest-rounded
        // result is exactly round(float32 AdamW)), and the param chunk is written back with h.Rounding.
        UpdateInWidenedChunks(param, grad, 8, h.Rounding,
            (pf, gf, j, len) => AdamWRange(pf, gf, (float*)mp + j, (float*)vp + j, 0, len, h));
    }

    private static void AdamWRange(float* p, float* g, float* m, float* v, int start, int end, AdamWStepParams h)
    {
        float decay = 1f - h.LearningRate * h.WeightDecay;
        float stepSize = h.LearningRate / h.BiasCorrection1;
        float invSqrtBc2 = 1f / MathF.Sqrt(h.BiasCorrection2);
        float c1 = 1f - h.Beta1, c2 = 1f - h.Beta2;
        int i = start;
        // Vector<float> (256-bit on AVX2 and by default on AVX-512 hosts, 128-bit on Arm) rather than Vector512 only: on
        // a host without AVX-512 that path had left the whole update to the scalar loop. The kernel is bound by memory
        // traffic, not width; each lane does the scalar loop's operations in its order, so the bits are the same.
        if (Vector.IsHardwareAccelerated)
        {
            var vb1 = new Vector<float>(h.Beta1); var vc1 = new Vector<float>(c1);
            var vb2 = new Vector<float>(h.Beta2); var vc2 = new Vector<float>(c2);
            var vDecay = new Vector<float>(decay); var vStep = new Vector<float>(stepSize);
            var vInv = new Vector<float>(invSqrtBc2); var vEps = new Vector<float>(h.Eps);
            for (; i <= end - Vector<float>.Count; i += Vector<float>.Count)
            {
                var gi = Vector.Load(g + i);
                var mi = vb1 * Vector.Load(m + i) + vc1 * gi;
                var vi = vb2 * Vector.Load(v + i) + vc2 * gi * gi;
                mi.Store(m + i);
                vi.Store(v + i);
                var denom = Vector.SquareRoot(vi) * vInv + vEps;
                (vDecay * Vector.Load(p + i) - vStep * mi / denom).Store(p + i);
            }
        }
        for (; i < end; i++)
        {
            float gi = g[i];
            float mi = h.Beta1 * m[i] + c1 * gi;
            float vi = h.Beta2 * v[i] + c2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = decay * p[i] - stepSize * mi / (MathF.Sqrt(vi) * invSqrtBc2 + h.Eps);
        }
    }

    /// <summary>Σ x² over a contiguous float32/bfloat16/float16 tensor, in double (chunks of float32 partial sums).</summary>
    public double SumOfSquares(Tensor x)
    {
        RequireFloating(x, "sum_of_squares");
        byte* p = BytePtr(x);
        DType t = x.DType;
        int z = t.SizeInBytes();
        float* buf = stackalloc float[HalfChunk];
        double total = 0;
        for (long j = 0; j < x.Numel; j += HalfChunk)
        {
            int len = (int)Math.Min(HalfChunk, x.Numel - j);
            GatherFloats(p + j * z, t, 1, buf, len);
            total += System.Numerics.Tensors.TensorPrimitives.SumOfSquares(new ReadOnlySpan<float>(buf, len));
        }
        return total;
    }
}
