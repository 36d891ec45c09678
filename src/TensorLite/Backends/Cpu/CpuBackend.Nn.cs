using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

// Fused softmax / cross-entropy / RMSNorm / RoPE kernels on contiguous float32 tensors. Row kernels take one
// row of the last dimension at a time (it stays in cache between passes) and run parallel over rows; softmax
// along another axis sweeps that axis over tiles of adjacent columns instead of transposing.
internal sealed unsafe partial class CpuBackend
{
    // ---- softmax ------------------------------------------------------------------------------------

    /// <summary>Columns per work item of the strided (non-last axis) softmax: two stack buffers of this size.</summary>
    private const int SoftmaxTile = 256;

    public void Softmax(Tensor x, Tensor y, int axis, bool log)
    {
        var (outer, len, inner) = SplitAxis(x, axis);
        if (len == 0 || x.Numel == 0) return;
        nint xp = (nint)Ptr(x), yp = (nint)Ptr(y);
        if (inner == 1)
        {
            CpuParallel.For(outer, 4L * len, (start, end) =>
            {
                for (int r = start; r < end; r++)
                {
                    var xs = new ReadOnlySpan<float>((float*)xp + (long)r * len, len);
                    var ys = new Span<float>((float*)yp + (long)r * len, len);
                    float max = TensorPrimitives.Max(xs);
                    if (log)
                    {
                        float sum = NnSimd.ExpShifted(xs, max, 0f, 1f, default);
                        TensorPrimitives.Subtract(xs, max, ys);
                        TensorPrimitives.Subtract(ys, MathF.Log(sum), ys);
                    }
                    else
                    {
                        float sum = NnSimd.ExpShifted(xs, max, 0f, 1f, ys);
                        TensorPrimitives.Multiply(ys, 1f / sum, ys);
                    }
                }
            });
            return;
        }
        // Reducing along a strided axis: each work item takes a tile of up to SoftmaxTile adjacent columns of
        // one outer block and sweeps the axis with vector ops over the tile, so nothing is transposed.
        int tiles = (inner + SoftmaxTile - 1) / SoftmaxTile;
        CpuParallel.For(outer * tiles, 4L * len * Math.Min(inner, SoftmaxTile), (start, end) =>
        {
            Span<float> maxBuf = stackalloc float[SoftmaxTile];
            Span<float> sumBuf = stackalloc float[SoftmaxTile];
            for (int item = start; item < end; item++)
            {
                int c0 = item % tiles * SoftmaxTile, w = Math.Min(SoftmaxTile, inner - c0);
                long block = (long)(item / tiles) * len * inner + c0;
                ReadOnlySpan<float> X(int k) => new((float*)xp + block + (long)k * inner, w);
                Span<float> Y(int k) => new((float*)yp + block + (long)k * inner, w);
                var m = maxBuf[..w];
                var s = sumBuf[..w];
                X(0).CopyTo(m);
                for (int k = 1; k < len; k++) TensorPrimitives.Max(m, X(k), m);
                s.Clear();
                for (int k = 0; k < len; k++)
                {
                    var yk = Y(k);
                    TensorPrimitives.Subtract(X(k), m, yk);
                    TensorPrimitives.Exp(yk, yk);
                    TensorPrimitives.Add(s, yk, s);
                }
                if (log)
                {
                    TensorPrimitives.Log(s, s);
                    for (int k = 0; k < len; k++)
                    {
                        var yk = Y(k);
                        TensorPrimitives.Subtract(X(k), m, yk);
                        TensorPrimitives.Subtract(yk, s, yk);
                    }
                }
                else
                {
                    TensorPrimitives.Reciprocal(s, s);
                    for (int k = 0; k < len; k++) TensorPrimitives.Multiply(Y(k), s, Y(k));
                }
            }
        });
    }

    public void SoftmaxBackward(Tensor y, Tensor gy, Tensor gx, int axis, bool log)
    {
        var (outer, len, inner) = SplitAxis(y, axis);
        if (len == 0 || y.Numel == 0) return;
        nint yp = (nint)Ptr(y), gyp = (nint)Ptr(gy), gxp = (nint)Ptr(gx);
        if (inner == 1)
        {
            CpuParallel.For(outer, 4L * len, (start, end) =>
            {
                for (int r = start; r < end; r++)
                {
                    var ys = new ReadOnlySpan<float>((float*)yp + (long)r * len, len);
                    var gys = new ReadOnlySpan<float>((float*)gyp + (long)r * len, len);
                    var gxs = new Span<float>((float*)gxp + (long)r * len, len);
                    if (log)
                    {
                        // gx = gy − softmax·Σgy, softmax = exp(log_softmax)
                        float sum = TensorPrimitives.Sum(gys);
                        NnSimd.ExpShifted(ys, 0f, 0f, -sum, gxs);
                        TensorPrimitives.Add(gxs, gys, gxs);
                    }
                    else
                    {
                        // gx = y·(gy − Σ gy·y)
                        float dot = TensorPrimitives.Dot(gys, ys);
                        TensorPrimitives.Subtract(gys, dot, gxs);
                        TensorPrimitives.Multiply(gxs, ys, gxs);
                    }
                }
            });
            return;
        }
        int tiles = (inner + SoftmaxTile - 1) / SoftmaxTile;
        CpuParallel.For(outer * tiles, 4L * len * Math.Min(inner, SoftmaxTile), (start, end) =>
        {
            Span<float> sumBuf = stackalloc float[SoftmaxTile];
            for (int item = start; item < end; item++)
            {
                int c0 = item % tiles * SoftmaxTile, w = Math.Min(SoftmaxTile, inner - c0);
                long block = (long)(item / tiles) * len * inner + c0;
                ReadOnlySpan<float> Yk(int k) => new((float*)yp + block + (long)k * inner, w);
                ReadOnlySpan<float> Gy(int k) => new((float*)gyp + block + (long)k * inner, w);
                Span<float> Gx(int k) => new((float*)gxp + block + (long)k * inner, w);
                var s = sumBuf[..w];
                s.Clear();
                for (int k = 0; k < len; k++)
                {
                    if (log) TensorPrimitives.Add(s, Gy(k), s);
                    else TensorPrimitives.FusedMultiplyAdd(Gy(k), Yk(k), s, s);
                }
                for (int k = 0; k < len; k++)
                {
                    var g = Gx(k);
                    if (log)
                    {
                        TensorPrimitives.Exp(Yk(k), g);
                        TensorPrimitives.Multiply(g, s, g);
                        TensorPrimitives.Subtract(Gy(k), g, g);
                    }
                    else
                    {
                        TensorPrimitives.Subtract(Gy(k), s, g);
                        TensorPrimitives.Multiply(g, Yk(k), g);
                    }
                }
            }
        });
    }

    private static (int Outer, int Len, int Inner) SplitAxis(Tensor t, int axis) => ShapeMath.SplitAxis(t.Shape, axis);

    // ---- cross-entropy ------------------------------------------------------------------------------

    public int CrossEntropy(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor loss) =>
        CrossEntropyRows(logits, targets, ignoreIndex, (nint)Ptr(rowMax), (nint)Ptr(rowLogSum), 0, loss);

    // The gradient is written in the pass that sums the exponentials, while the row is still in the cache, and
    // normalized by one multiply: each logit is exponentiated once per step instead of again in backward.
    public int CrossEntropyWithGradient(Tensor logits, Tensor targets, int ignoreIndex, Tensor loss, Tensor gLogits) =>
        CrossEntropyRows(logits, targets, ignoreIndex, 0, 0, (nint)Ptr(gLogits), loss);

    /// <summary>The cross-entropy pass over the rows: the loss, and either the row statistics (mp, lp) or the
    /// gradient of the mean loss (gp) where those pointers are not 0.</summary>
    private int CrossEntropyRows(Tensor logits, Tensor targets, int ignoreIndex, nint mp, nint lp, nint gp, Tensor loss)
    {
        int v = LastDim(logits);
        int n = targets.Numel;
        byte* tp = BytePtr(targets);
        bool is64 = targets.DType == DType.Int64;
        int count = 0;
        for (int i = 0; i < n; i++)
        {
            long t = TargetAt(tp, is64, i);
            if (t == ignoreIndex) continue;
            if (t < 0 || t >= v)
                throw new ArgumentOutOfRangeException(nameof(targets),
                    $"cross_entropy: target id {t} at position {i} is out of range for {v} classes (valid ids are 0..{v - 1} or the ignore index {ignoreIndex}).");
            count++;
        }

        nint xp = (nint)Ptr(logits), tpp = (nint)tp;
        float perRow = count == 0 ? 0f : 1f / count;
        int chunks = ChunkCount(n, 2L * v);
        var partial = new double[chunks];
        RunChunks(n, chunks, (c, start, end) =>
        {
            double acc = 0;
            for (int r = start; r < end; r++)
            {
                long t = TargetAt((byte*)tpp, is64, r);
                var g = gp == 0 ? default : new Span<float>((float*)gp + (long)r * v, v);
                if (t == ignoreIndex)
                {
                    if (mp != 0) { ((float*)mp)[r] = 0f; ((float*)lp)[r] = 0f; }
                    g.Clear();
                    continue;
                }
                var row = new ReadOnlySpan<float>((float*)xp + (long)r * v, v);
                float max = TensorPrimitives.Max(row);
                float sum = NnSimd.ExpShifted(row, max, 0f, 1f, g);
                float logSum = MathF.Log(sum);
                if (mp != 0) { ((float*)mp)[r] = max; ((float*)lp)[r] = logSum; }
                if (gp != 0)
                {
                    // (softmax − onehot)/count, with softmax = exp(x − max)/Σ.
                    TensorPrimitives.Multiply(g, perRow / sum, g);
                    g[(int)t] -= perRow;
                }
                // −log p = log Σ exp(x − max) − (x_t − max): no cancellation against a large max.
                acc += (double)logSum + (max - row[(int)t]);
            }
            partial[c] = acc;
        });
        double total = 0;
        foreach (var p in partial) total += p;
        *Ptr(loss) = count == 0 ? 0f : (float)(total / count);
        return count;
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor gLoss, int count, Tensor gLogits)
    {
        int v = LastDim(logits);
        int n = targets.Numel;
        if (n == 0 || v == 0) return;
        float scale = count == 0 ? 0f : *Ptr(gLoss) / count;
        bool is64 = targets.DType == DType.Int64;
        nint xp = (nint)Ptr(logits), mp = (nint)Ptr(rowMax), lp = (nint)Ptr(rowLogSum), tp = (nint)BytePtr(targets), gp = (nint)Ptr(gLogits);
        CpuParallel.For(n, 2L * v, (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                var g = new Span<float>((float*)gp + (long)r * v, v);
                long t = TargetAt((byte*)tp, is64, r);
                if (t == ignoreIndex || count == 0) { g.Clear(); continue; }
                var row = new ReadOnlySpan<float>((float*)xp + (long)r * v, v);
                // (softmax − onehot)·scale, with softmax = exp((x − max) − logSum), in one pass over the row.
                NnSimd.ExpShifted(row, ((float*)mp)[r], ((float*)lp)[r], scale, g);
                g[(int)t] -= scale;
            }
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long TargetAt(byte* p, bool is64, int i) => is64 ? ((long*)p)[i] : ((int*)p)[i];

    // ---- RMSNorm ------------------------------------------------------------------------------------

    public void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd)
    {
        int d = LastDim(x);
        if (d == 0 || x.Numel == 0) return;
        int rows = x.Numel / d;
        nint xp = (nint)Ptr(x), wp = (nint)Ptr(weight), yp = (nint)Ptr(y), rp = (nint)Ptr(rstd);
        CpuParallel.For(rows, 3L * d, (start, end) =>
        {
            var w = new ReadOnlySpan<float>((float*)wp, d);
            for (int r = start; r < end; r++)
            {
                var xs = new ReadOnlySpan<float>((float*)xp + (long)r * d, d);
                var ys = new Span<float>((float*)yp + (long)r * d, d);
                float inv = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xs) / d + eps);
                ((float*)rp)[r] = inv;
                TensorPrimitives.Multiply(xs, inv, ys);
                TensorPrimitives.Multiply(ys, w, ys);
            }
        });
    }

    public void RmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor gy, Tensor? gx, Tensor? gWeight)
    {
        int d = LastDim(x);
        if (d == 0) return;
        int rows = x.Numel / d;
        if (gWeight != null) Span(gWeight).Clear();
        if (rows == 0) return;
        nint xp = (nint)Ptr(x), wp = (nint)Ptr(weight), rp = (nint)Ptr(rstd), gyp = (nint)Ptr(gy);
        nint gxp = gx == null ? 0 : (nint)Ptr(gx);
        bool wantW = gWeight != null;
        int chunks = ChunkCount(rows, 5L * d);
        // Each chunk sums its rows' weight gradient privately; the partial sums are added in chunk order.
        var partials = wantW ? new float[chunks][] : null;
        RunChunks(rows, chunks, (c, start, end) =>
        {
            float[] tmpArray = ArrayPool<float>.Shared.Rent(d);
            var tmp = tmpArray.AsSpan(0, d);
            Span<float> acc = default;
            if (wantW) acc = (partials![c] = new float[d]);
            var w = new ReadOnlySpan<float>((float*)wp, d);
            for (int r = start; r < end; r++)
            {
                var xs = new ReadOnlySpan<float>((float*)xp + (long)r * d, d);
                var gys = new ReadOnlySpan<float>((float*)gyp + (long)r * d, d);
                float inv = ((float*)rp)[r];
                if (gxp != 0)
                {
                    // gx = rstd·(a − x·rstd²·(a·x)/D) with a = gy·w
                    var gxs = new Span<float>((float*)gxp + (long)r * d, d);
                    TensorPrimitives.Multiply(gys, w, tmp);
                    float c2 = inv * inv * TensorPrimitives.Dot(tmp, xs) / d;
                    TensorPrimitives.MultiplyAdd(xs, -c2, tmp, gxs);
                    TensorPrimitives.Multiply(gxs, inv, gxs);
                }
                if (wantW)
                {
                    // gw += gy·x·rstd
                    TensorPrimitives.Multiply(gys, inv, tmp);
                    TensorPrimitives.FusedMultiplyAdd(tmp, xs, acc, acc);
                }
            }
            ArrayPool<float>.Shared.Return(tmpArray);
        });
        if (wantW)
        {
            var gw = Span(gWeight!);
            foreach (var p in partials!) TensorPrimitives.Add(gw, p, gw);
        }
    }

    // ---- RoPE ---------------------------------------------------------------------------------------

    public void Rope(Tensor x, Tensor cos, Tensor sin, Tensor y, bool inverse)
    {
        int d = LastDim(x);
        if (d == 0 || x.Numel == 0) return;
        int seq = x.Shape[^2], half = d / 2;
        int rows = x.Numel / d;
        nint xp = (nint)Ptr(x), yp = (nint)Ptr(y), cp = (nint)Ptr(cos), sp = (nint)Ptr(sin);
        CpuParallel.For(rows, 3L * d, (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                long table = (long)(r % seq) * half;
                float* xr = (float*)xp + (long)r * d, yr = (float*)yp + (long)r * d;
                NnSimd.Rotate(xr, xr + half, (float*)cp + table, (float*)sp + table, yr, yr + half, half, inverse);
            }
        });
    }

    // ---- SwiGLU -------------------------------------------------------------------------------------

    // Both directions run the passes that silu followed by a multiply run, so on float32 the fused op gives those ops'
    // bits: fusing changes what the graph keeps, not the numbers. The passes go block by block, so a block stays in
    // cache between them, half-precision blocks are widened into stack buffers (no float32 copy of a whole tensor) and
    // the backward's scratch fits on the stack. A block has at least SwiGluBlock elements (a short tail joins the block
    // before it): every TensorPrimitives call then takes its vectorized path, as the unfused ops' calls over whole
    // slices do (only spans shorter than a vector run scalar code, whose exp may round differently).
    private const int SwiGluBlock = 1024, SwiGluMaxBlock = 2 * SwiGluBlock;

    private static int SwiGluBlockEnd(int start, int end) => end - start < SwiGluMaxBlock ? end : start + SwiGluBlock;

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        DType type = SwiGluType("swiglu", gate, up, y);
        int z = type.SizeInBytes();
        nint gp = (nint)BytePtr(gate), up_ = (nint)BytePtr(up), yp = (nint)BytePtr(y);
        CpuParallel.For(y.Numel, 4, (start, end) =>
        {
            float* gBuf = stackalloc float[SwiGluMaxBlock], uBuf = stackalloc float[SwiGluMaxBlock], yBuf = stackalloc float[SwiGluMaxBlock];
            for (int b0 = start, b1; b0 < end; b0 = b1)
            {
                b1 = SwiGluBlockEnd(b0, end);
                int n = b1 - b0;
                var g = new ReadOnlySpan<float>(HalfKernels.AsFloat((byte*)gp + (long)b0 * z, type, gBuf, n), n);
                var u = new ReadOnlySpan<float>(HalfKernels.AsFloat((byte*)up_ + (long)b0 * z, type, uBuf, n), n);
                float* yf = type == DType.Float32 ? (float*)((byte*)yp + (long)b0 * z) : yBuf;
                var ys = new Span<float>(yf, n);
                TensorPrimitives.Sigmoid(g, ys);
                TensorPrimitives.Multiply(g, ys, ys);                                          // silu
                TensorPrimitives.Multiply(ys, u, ys);
                if (type != DType.Float32) HalfKernels.Narrow(yf, (ushort*)((byte*)yp + (long)b0 * z), type, n);
            }
        });
    }

    public void SwiGluBackward(Tensor gate, Tensor up, Tensor gy, Tensor? gGate, Tensor? gUp)
    {
        DType type = SwiGluType("swiglu backward", gate, up, gy, gGate, gUp);
        if (gGate == null && gUp == null) return;
        int z = type.SizeInBytes();
        nint gp = (nint)BytePtr(gate), up_ = (nint)BytePtr(up), gyp = (nint)BytePtr(gy);
        nint ggp = gGate == null ? 0 : (nint)BytePtr(gGate), gup = gUp == null ? 0 : (nint)BytePtr(gUp);
        CpuParallel.For(gate.Numel, 4, (start, end) =>
        {
            // gate, up, gy (widened half-precision blocks), σ, silu, a temporary, and the two gradients' float32 blocks.
            float* buffers = stackalloc float[8 * SwiGluMaxBlock];
            float* gBuf = buffers, uBuf = gBuf + SwiGluMaxBlock, dyBuf = uBuf + SwiGluMaxBlock;
            float* sigmoidBuf = dyBuf + SwiGluMaxBlock, siluBuf = sigmoidBuf + SwiGluMaxBlock, tempBuf = siluBuf + SwiGluMaxBlock;
            float* ggBuf = tempBuf + SwiGluMaxBlock, guBuf = ggBuf + SwiGluMaxBlock;
            for (int b0 = start, b1; b0 < end; b0 = b1)
            {
                b1 = SwiGluBlockEnd(b0, end);
                int n = b1 - b0;
                long at = (long)b0 * z;
                var g = new ReadOnlySpan<float>(HalfKernels.AsFloat((byte*)gp + at, type, gBuf, n), n);
                var dy = new ReadOnlySpan<float>(HalfKernels.AsFloat((byte*)gyp + at, type, dyBuf, n), n);
                var sigmoid = new Span<float>(sigmoidBuf, n);
                var silu = new Span<float>(siluBuf, n);
                var temp = new Span<float>(tempBuf, n);
                TensorPrimitives.Sigmoid(g, sigmoid);
                TensorPrimitives.Multiply(g, sigmoid, silu);
                if (ggp != 0)
                {
                    var u = new ReadOnlySpan<float>(HalfKernels.AsFloat((byte*)up_ + at, type, uBuf, n), n);
                    float* ggf = type == DType.Float32 ? (float*)((byte*)ggp + at) : ggBuf;
                    var gg = new Span<float>(ggf, n);
                    TensorPrimitives.Subtract(1f, silu, temp);
                    TensorPrimitives.FusedMultiplyAdd(sigmoid, temp, silu, gg);               // silu'(gate)
                    TensorPrimitives.Multiply(dy, u, temp);
                    TensorPrimitives.Multiply(gg, temp, gg);
                    if (type != DType.Float32) HalfKernels.Narrow(ggf, (ushort*)((byte*)ggp + at), type, n);
                }
                if (gup != 0)
                {
                    float* guf = type == DType.Float32 ? (float*)((byte*)gup + at) : guBuf;
                    TensorPrimitives.Multiply(dy, silu, new Span<float>(guf, n));
                    if (type != DType.Float32) HalfKernels.Narrow(guf, (ushort*)((byte*)gup + at), type, n);
                }
            }
        });
    }

    /// <summary>The one floating-point dtype every operand of a SwiGLU kernel has.</summary>
    private static DType SwiGluType(string op, params Tensor?[] tensors)
    {
        DType type = tensors[0]!.DType;
        foreach (var t in tensors)
        {
            if (t == null) continue;
            RequireFloating(t, op);
            if (t.DType != type)
                throw new DTypeMismatchException($"{op}: every operand must have one dtype, got {tensors[0]!.Describe()} and {t.Describe()}.");
        }
        return type;
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private static int LastDim(Tensor t) => t.Rank == 0 ? 1 : t.Shape[^1];

    /// <summary>How many chunks a reduction over <paramref name="rows"/> is split into: one when the work is
    /// small, else one per core. Fixed before the loop, so partial sums combine in a deterministic order.</summary>
    private static int ChunkCount(int rows, long workPerRow) =>
        CpuParallel.Threads <= 1 || rows < 2 || rows * workPerRow < CpuParallel.MinParallelWork
            ? 1 : Math.Min(rows, CpuParallel.Threads);

    /// <summary>Runs body(chunk, start, end) for each of <paramref name="chunks"/> equal slices of [0, rows).</summary>
    private static void RunChunks(int rows, int chunks, Action<int, int, int> body)
    {
        if (chunks <= 1)
        {
            body(0, 0, rows);
            return;
        }
        CpuParallel.For(chunks, CpuParallel.MinParallelWork, (cs, ce) =>
        {
            for (int c = cs; c < ce; c++)
                body(c, (int)((long)rows * c / chunks), (int)((long)rows * (c + 1) / chunks));
        });
    }
}

/// <summary>Explicitly vectorized row primitives that TensorPrimitives has no fused form of.</summary>
internal static unsafe class NnSimd
{
    /// <summary>dst = exp((x − shift) − shift2)·scale (when dst is not empty); returns Σ exp((x − shift) − shift2).</summary>
    public static float ExpShifted(ReadOnlySpan<float> x, float shift, float shift2, float scale, Span<float> dst)
    {
        int n = x.Length, i = 0;
        bool store = !dst.IsEmpty;
        float sum = 0f;
        fixed (float* xp = x, dp = dst)
        {
            if (Vector512.IsHardwareAccelerated && n >= 16)
            {
                var s = Vector512.Create(shift);
                var s2 = Vector512.Create(shift2);
                var k = Vector512.Create(scale);
                Vector512<float> acc0 = Vector512<float>.Zero, acc1 = Vector512<float>.Zero;
                for (; i <= n - 32; i += 32)
                {
                    var e0 = Vector512.Exp((Vector512.Load(xp + i) - s) - s2);
                    var e1 = Vector512.Exp((Vector512.Load(xp + i + 16) - s) - s2);
                    acc0 += e0;
                    acc1 += e1;
                    if (store)
                    {
                        (e0 * k).Store(dp + i);
                        (e1 * k).Store(dp + i + 16);
                    }
                }
                for (; i <= n - 16; i += 16)
                {
                    var e = Vector512.Exp((Vector512.Load(xp + i) - s) - s2);
                    acc0 += e;
                    if (store) (e * k).Store(dp + i);
                }
                sum = Vector512.Sum(acc0 + acc1);
            }
            else if (Vector256.IsHardwareAccelerated && n >= 8)
            {
                var s = Vector256.Create(shift);
                var s2 = Vector256.Create(shift2);
                var k = Vector256.Create(scale);
                var acc = Vector256<float>.Zero;
                for (; i <= n - 8; i += 8)
                {
                    var e = Vector256.Exp((Vector256.Load(xp + i) - s) - s2);
                    acc += e;
                    if (store) (e * k).Store(dp + i);
                }
                sum = Vector256.Sum(acc);
            }
            for (; i < n; i++)
            {
                float e = MathF.Exp((xp[i] - shift) - shift2);
                sum += e;
                if (store) dp[i] = e * scale;
            }
        }
        return sum;
    }

    /// <summary>y1 = x1·cos − x2·sin, y2 = x2·cos + x1·sin over n elements (sin negated when inverse).</summary>
    public static void Rotate(float* x1, float* x2, float* cos, float* sin, float* y1, float* y2, int n, bool inverse)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var sign = Vector512.Create(inverse ? -1f : 1f);
            for (; i <= n - 16; i += 16)
            {
                var a = Vector512.Load(x1 + i);
                var b = Vector512.Load(x2 + i);
                var c = Vector512.Load(cos + i);
                var s = Vector512.Load(sin + i) * sign;
                (a * c - b * s).Store(y1 + i);
                (b * c + a * s).Store(y2 + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var sign = Vector256.Create(inverse ? -1f : 1f);
            for (; i <= n - 8; i += 8)
            {
                var a = Vector256.Load(x1 + i);
                var b = Vector256.Load(x2 + i);
                var c = Vector256.Load(cos + i);
                var s = Vector256.Load(sin + i) * sign;
                (a * c - b * s).Store(y1 + i);
                (b * c + a * s).Store(y2 + i);
            }
        }
        float sg = inverse ? -1f : 1f;
        for (; i < n; i++)
        {
            float a = x1[i], b = x2[i], c = cos[i], s = sin[i] * sg;
            y1[i] = a * c - b * s;
            y2[i] = b * c + a * s;
        }
    }
}
