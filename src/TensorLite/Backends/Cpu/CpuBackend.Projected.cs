using System.Runtime.Intrinsics;
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
        if (Vector512.IsHardwareAccelerated)
        {
            var vb1 = Vector512.Create(h.Beta1); var vc1 = Vector512.Create(c1);
            var vb2 = Vector512.Create(h.Beta2); var vc2 = Vector512.Create(c2);
            var vBc1 = Vector512.Create(invBc1); var vInv = Vector512.Create(invSqrtBc2); var vEps = Vector512.Create(h.Eps);
            for (; i <= end - 16; i += 16)
            {
                var gi = Vector512.Load(g + i);
                var mi = vb1 * Vector512.Load(m + i) + vc1 * gi;
                var vi = vb2 * Vector512.Load(v + i) + vc2 * gi * gi;
                mi.Store(m + i);
                vi.Store(v + i);
                (vBc1 * mi / (Vector512.Sqrt(vi) * vInv + vEps)).Store(d + i);
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
        if (Vector512.IsHardwareAccelerated)
        {
            var vd = Vector512.Create(decay); var vs = Vector512.Create(stepSize);
            for (; i <= n - 16; i += 16)
                (vd * Vector512.Load(p + i) - vs * Vector512.Load(u + i)).Store(p + i);
        }
        for (; i < n; i++) p[i] = decay * p[i] - stepSize * u[i];
    }
}
