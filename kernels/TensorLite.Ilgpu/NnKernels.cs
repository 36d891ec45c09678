using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;

namespace TensorLite.Ilgpu;

// Row-wise NN kernels: softmax (any axis), cross-entropy, RMSNorm and RoPE.
//
// Reducing kernels are explicitly grouped: one group of up to RowGroupSize threads per row (a "row" is one line along
// the reduced axis; for softmax along a non-last axis its elements are `inner` apart). Each thread strides through
// the row, then the group combines the per-thread partials with a shared-memory tree (GroupSum / GroupMax). The
// barriers sit in control flow that is uniform across the group, so the same code runs on CUDA and on the CPU
// accelerator. Purely element-wise pieces (cross-entropy backward, RoPE, the RMSNorm weight gradient) are
// implicitly grouped, one thread per output element.
public static partial class IlgpuKernels
{
    /// <summary>Threads per group of the row kernels on CUDA (a power of two, a multiple of the CUDA warp), and the size
    /// of their shared scratch. The kernels read their group size at run time (Group.DimX, a power of two up to this):
    /// the CPU emulator runs them with smaller groups (IlgpuBackend.GroupThreads).</summary>
    public const int RowGroupSize = 64;

    /// <summary>Sum of <paramref name="value"/> over the group; every thread gets the result.</summary>
    private static float GroupSum(ArrayView<float> scratch, int tid, float value)
    {
        scratch[tid] = value;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (tid < s) scratch[tid] += scratch[tid + s];
            Group.Barrier();
        }
        float total = scratch[0];
        Group.Barrier();   // scratch is reused by the next reduction
        return total;
    }

    /// <summary>The same sum in double (the linear-algebra and optimizer reductions).</summary>
    private static double GroupSum(ArrayView<double> scratch, int tid, double value)
    {
        scratch[tid] = value;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (tid < s) scratch[tid] += scratch[tid + s];
            Group.Barrier();
        }
        double total = scratch[0];
        Group.Barrier();   // scratch is reused by the next reduction
        return total;
    }

    /// <summary>Maximum of <paramref name="value"/> over a group of <paramref name="groupSize"/> threads (a power of two);
    /// every thread gets the result. Shared by the row kernels and the 8-bit optimizer kernels.</summary>
    private static float GroupMax(ArrayView<float> scratch, int tid, float value, int groupSize)
    {
        scratch[tid] = value;
        Group.Barrier();
        for (int s = groupSize / 2; s > 0; s >>= 1)
        {
            if (tid < s) scratch[tid] = XMath.Max(scratch[tid], scratch[tid + s]);
            Group.Barrier();
        }
        float m = scratch[0];
        Group.Barrier();
        return m;
    }

    // ---- softmax ------------------------------------------------------------------------------------

    /// <summary>Softmax (log = 0) or log-softmax (log = 1) of x viewed as [outer, len, inner] along len; one group
    /// per (outer, inner) line. Grid: outer·inner groups of <see cref="RowGroupSize"/>.</summary>
    public static void SoftmaxRows(ArrayView<float> x, ArrayView<float> y, int len, int inner, int log)
    {
        var scratch = SharedMemory.Allocate<float>(RowGroupSize);
        int tid = Group.IdxX, line = Grid.IdxX;
        int o = line / inner, j = line - o * inner;
        long start = (long)o * len * inner + j;

        float m = float.NegativeInfinity;
        for (int k = tid; k < len; k += Group.DimX) m = XMath.Max(m, x[start + (long)k * inner]);
        m = GroupMax(scratch, tid, m, Group.DimX);

        float s = 0f;
        for (int k = tid; k < len; k += Group.DimX) s += XMath.Exp(x[start + (long)k * inner] - m);
        s = GroupSum(scratch, tid, s);

        if (log != 0)
        {
            float logSum = XMath.Log(s);
            for (int k = tid; k < len; k += Group.DimX)
            {
                long idx = start + (long)k * inner;
                y[idx] = (x[idx] - m) - logSum;
            }
        }
        else
        {
            float inv = 1f / s;
            for (int k = tid; k < len; k += Group.DimX)
            {
                long idx = start + (long)k * inner;
                y[idx] = XMath.Exp(x[idx] - m) * inv;
            }
        }
    }

    /// <summary>Softmax gradient along len of [outer, len, inner]: gx = y·(gy − Σgy·y), or for log-softmax
    /// gx = gy − exp(y)·Σgy. Same launch shape as <see cref="SoftmaxRows"/>.</summary>
    public static void SoftmaxBackwardRows(ArrayView<float> y, ArrayView<float> gy, ArrayView<float> gx, int len, int inner, int log)
    {
        var scratch = SharedMemory.Allocate<float>(RowGroupSize);
        int tid = Group.IdxX, line = Grid.IdxX;
        int o = line / inner, j = line - o * inner;
        long start = (long)o * len * inner + j;

        float acc = 0f;
        for (int k = tid; k < len; k += Group.DimX)
        {
            long idx = start + (long)k * inner;
            acc += log != 0 ? gy[idx] : gy[idx] * y[idx];
        }
        float sum = GroupSum(scratch, tid, acc);

        for (int k = tid; k < len; k += Group.DimX)
        {
            long idx = start + (long)k * inner;
            gx[idx] = log != 0 ? gy[idx] - XMath.Exp(y[idx]) * sum : (gy[idx] - sum) * y[idx];
        }
    }

    // ---- cross-entropy ------------------------------------------------------------------------------

    /// <summary>Per row of logits [n, v]: rowMax and rowLogSum = log Σ exp(x − max), both 0 for ignored rows.
    /// Targets are read as int32 at index row &lt;&lt; targetShift (shift 1 reads the low word of an int64 target,
    /// which the host has already checked is the ignore index or in [0, v)). Grid: n groups.</summary>
    public static void CrossEntropyRows(ArrayView<float> x, ArrayView<int> targets, int targetShift, int ignoreIndex, int v,
        ArrayView<float> rowMax, ArrayView<float> rowLogSum)
    {
        var scratch = SharedMemory.Allocate<float>(RowGroupSize);
        int tid = Group.IdxX, r = Grid.IdxX;
        int t = targets[r << targetShift];
        if (t == ignoreIndex)   // uniform across the group: no thread reaches a barrier
        {
            if (tid == 0) { rowMax[r] = 0f; rowLogSum[r] = 0f; }
            return;
        }
        long start = (long)r * v;
        float m = float.NegativeInfinity;
        for (int k = tid; k < v; k += Group.DimX) m = XMath.Max(m, x[start + k]);
        m = GroupMax(scratch, tid, m, Group.DimX);
        float s = 0f;
        for (int k = tid; k < v; k += Group.DimX) s += XMath.Exp(x[start + k] - m);
        s = GroupSum(scratch, tid, s);
        if (tid == 0)
        {
            rowMax[r] = m;
            rowLogSum[r] = XMath.Log(s);
        }
    }

    /// <summary>Mean over non-ignored rows of logSum + (max − x_target) into loss[0] (0 when count is 0).
    /// Grid: a single group.</summary>
    public static void CrossEntropyLoss(ArrayView<float> x, ArrayView<int> targets, int targetShift, int ignoreIndex, int n, int v,
        ArrayView<float> rowMax, ArrayView<float> rowLogSum, int count, ArrayView<float> loss)
    {
        var scratch = SharedMemory.Allocate<float>(RowGroupSize);
        int tid = Group.IdxX;
        float acc = 0f;
        for (int r = tid; r < n; r += Group.DimX)
        {
            int t = targets[r << targetShift];
            if (t != ignoreIndex) acc += rowLogSum[r] + (rowMax[r] - x[(long)r * v + t]);
        }
        float total = GroupSum(scratch, tid, acc);
        if (tid == 0) loss[0] = count == 0 ? 0f : total / count;
    }

    /// <summary>gLogits = (exp((x − max) − logSum) − onehot)·gLoss/count, 0 on ignored rows; one thread per
    /// element of [n, v].</summary>
    public static void CrossEntropyBackward(Index1D i, ArrayView<float> x, ArrayView<int> targets, int targetShift, int ignoreIndex,
        int v, ArrayView<float> rowMax, ArrayView<float> rowLogSum, ArrayView<float> gLoss, int count, ArrayView<float> g)
    {
        int r = i / v, j = i - r * v;
        int t = targets[r << targetShift];
        if (t == ignoreIndex || count == 0)
        {
            g[i] = 0f;
            return;
        }
        float scale = gLoss[0] / count;
        float p = XMath.Exp((x[i] - rowMax[r]) - rowLogSum[r]) * scale;
        g[i] = j == t ? p - scale : p;
    }

    // ---- RMSNorm ------------------------------------------------------------------------------------

    /// <summary>y = x·rstd·w per row of [rows, d], rstd = 1/sqrt(mean(x²) + eps). Grid: rows groups.</summary>
    public static void RmsNormRows(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ArrayView<float> rstd, int d, float eps)
    {
        var scratch = SharedMemory.Allocate<float>(RowGroupSize);
        int tid = Group.IdxX, r = Grid.IdxX;
        long start = (long)r * d;
        float ss = 0f;
        for (int k = tid; k < d; k += Group.DimX)
        {
            float v = x[start + k];
            ss += v * v;
        }
        ss = GroupSum(scratch, tid, ss);
        float inv = 1f / XMath.Sqrt(ss / d + eps);
        if (tid == 0) rstd[r] = inv;
        for (int k = tid; k < d; k += Group.DimX) y[start + k] = x[start + k] * inv * w[k];
    }

    /// <summary>gx = rstd·(a − x·rstd²·(a·x)/d) with a = gy·w, per row of [rows, d]. Grid: rows groups.</summary>
    public static void RmsNormBackwardRows(ArrayView<float> x, ArrayView<float> w, ArrayView<float> rstd, ArrayView<float> gy,
        ArrayView<float> gx, int d)
    {
        var scratch = SharedMemory.Allocate<float>(RowGroupSize);
        int tid = Group.IdxX, r = Grid.IdxX;
        long start = (long)r * d;
        float dot = 0f;
        for (int k = tid; k < d; k += Group.DimX) dot += gy[start + k] * w[k] * x[start + k];
        dot = GroupSum(scratch, tid, dot);
        float inv = rstd[r];
        float c2 = inv * inv * dot / d;
        for (int k = tid; k < d; k += Group.DimX)
            gx[start + k] = (x[start + k] * -c2 + gy[start + k] * w[k]) * inv;
    }

    /// <summary>gw[j] = Σ_rows gy·rstd·x over rows in row order (deterministic); one thread per column j.</summary>
    public static void RmsNormWeightGrad(Index1D j, ArrayView<float> x, ArrayView<float> rstd, ArrayView<float> gy,
        ArrayView<float> gw, int rows, int d)
    {
        float acc = 0f;
        for (int r = 0; r < rows; r++)
        {
            long idx = (long)r * d + j;
            acc += gy[idx] * rstd[r] * x[idx];
        }
        gw[j] = acc;
    }

    // ---- RoPE ---------------------------------------------------------------------------------------

    /// <summary>Rotate-half RoPE on x [rows, d] with tables [seq, d/2] (row r uses table row r mod seq); one
    /// thread per pair. sign is −1 for the inverse rotation.</summary>
    public static void Rope(Index1D i, ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, ArrayView<float> y,
        int d, int seq, float sign)
    {
        int half = d / 2;
        int r = i / half, k = i - r * half;
        long table = (long)(r % seq) * half + k;
        long i1 = (long)r * d + k, i2 = i1 + half;
        float a = x[i1], b = x[i2], c = cos[table], s = sin[table] * sign;
        y[i1] = a * c - b * s;
        y[i2] = b * c + a * s;
    }

    /// <summary>SwiGLU, one thread per element, on buffers of one <see cref="FloatFormat"/>: y = silu(gate)·up in
    /// float32 (silu first, as the unfused ops compute it), rounded once into the format.</summary>
    public static void SwiGlu(Index1D i, ArrayView<byte> gate, ArrayView<byte> up, ArrayView<byte> y, int format)
    {
        float g = LoadAsFloat(gate, format, i);
        float silu = g * Sigmoid(g);
        StoreAsFloat(y, format, i, silu * LoadAsFloat(up, format, i));
    }

    /// <summary>SwiGLU backward, one thread per element, on buffers of one <see cref="FloatFormat"/>:
    /// gGate = (σ·(1 − silu) + silu)·(gy·up) when bit 1 of <paramref name="outputs"/> is set, gUp = gy·silu when bit 2
    /// is, each computed in float32 and rounded once; a buffer whose bit is clear is not touched.</summary>
    public static void SwiGluBackward(Index1D i, ArrayView<byte> gate, ArrayView<byte> up, ArrayView<byte> gy,
        ArrayView<byte> gGate, ArrayView<byte> gUp, int format, int outputs)
    {
        float g = LoadAsFloat(gate, format, i), dy = LoadAsFloat(gy, format, i);
        float s = Sigmoid(g);
        float silu = g * s;
        if ((outputs & 1) != 0) StoreAsFloat(gGate, format, i, (s * (1f - silu) + silu) * (dy * LoadAsFloat(up, format, i)));
        if ((outputs & 2) != 0) StoreAsFloat(gUp, format, i, dy * silu);
    }

    /// <summary>The NN kernels for <see cref="All"/>.</summary>
    private static IEnumerable<(MethodInfo, bool)> NnKernels()
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.Static;
        MethodInfo M(string name) => typeof(IlgpuKernels).GetMethod(name, flags)!;
        foreach (var name in new[] { nameof(SoftmaxRows), nameof(SoftmaxBackwardRows), nameof(CrossEntropyRows),
                     nameof(CrossEntropyLoss), nameof(RmsNormRows), nameof(RmsNormBackwardRows) })
            yield return (M(name), true);
        foreach (var name in new[] { nameof(CrossEntropyBackward), nameof(RmsNormWeightGrad), nameof(Rope),
                     nameof(SwiGlu), nameof(SwiGluBackward) })
            yield return (M(name), false);
    }
}
