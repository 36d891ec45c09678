using System.Numerics;
using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

internal sealed unsafe partial class CpuBackend
{
    public void AdamDirection(Tensor grad, Tensor m, Tensor v, Tensor direction, AdamWStepParams h)
    {
        nint gp = (nint)Ptr(grad), mp = (nint)Ptr(m), vp = (nint)Ptr(v), dp = (nint)Ptr(direction);
        CpuParallel.For(grad.Numel, 8, (start, end) =>
            AdamDirectionRange((float*)gp, (float*)mp, (float*)vp, (float*)dp, start, end, h));
    }

    private static void AdamDirectionRange(float* g, float* m, float* v, float* d, int start, int end, AdamWStepParams h)
    {
        float invBc1 = 1f / h.BiasCorrection1;
        float invSqrtBc2 = 1f / MathF.Sqrt(h.BiasCorrection2);
        float c1 = 1f - h.Beta1, c2 = 1f - h.Beta2;
        int i = start;
        if (Vector.IsHardwareAccelerated) // Vector<float>, not Vector512 only: see AdamWRange
        {
            var vb1 = new Vector<float>(h.Beta1); var vc1 = new Vector<float>(c1);
            var vb2 = new Vector<float>(h.Beta2); var vc2 = new Vector<float>(c2);
            var vBc1 = new Vector<float>(invBc1); var vInv = new Vector<float>(invSqrtBc2); var vEps = new Vector<float>(h.Eps);
            for (; i <= end - Vector<float>.Count; i += Vector<float>.Count)
            {
                var gi = Vector.Load(g + i);
                var mi = vb1 * Vector.Load(m + i) + vc1 * gi;
                var vi = vb2 * Vector.Load(v + i) + vc2 * gi * gi;
                mi.Store(m + i);
                vi.Store(v + i);
                (vBc1 * mi / (Vector.SquareRoot(vi) * vInv + vEps)).Store(d + i);
            }
        }
        for (; i < end; i++)
        {
            float gi = g[i];
            float mi = h.Beta1 * m[i] + c1 * gi;
            float vi = h.Beta2 * v[i] + c2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            d[i] = invBc1 * mi / (MathF.Sqrt(vi) * invSqrtBc2 + h.Eps);
        }
    }

    public void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize) =>
        ApplyUpdate(param, update, decay, stepSize, ParamRounding.Nearest);

    public void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize, ParamRounding rounding)
    {
        RequireFloating(param, "apply_update");
        RequireFloating(update, "apply_update");
        if (param.DType == DType.Float32 && update.DType == DType.Float32)
        {
            nint pp = (nint)Ptr(param), up = (nint)Ptr(update);
            CpuParallel.For(param.Numel, 2, (start, end) => ApplyUpdateRange((float*)pp + start, (float*)up + start, end - start, decay, stepSize));
            return;
        }
        UpdateInWidenedChunks(param, update, 2, rounding, (pf, uf, _, len) => ApplyUpdateRange(pf, uf, len, decay, stepSize));
    }

    private static void ApplyUpdateRange(float* p, float* u, int n, float decay, float stepSize)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vd = new Vector<float>(decay); var vs = new Vector<float>(stepSize);
            for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
                (vd * Vector.Load(p + i) - vs * Vector.Load(u + i)).Store(p + i);
        }
        for (; i < n; i++) p[i] = decay * p[i] - stepSize * u[i];
    }
}
