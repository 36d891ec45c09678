using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

// Causal attention on the GEMM's micro-kernel, one (batch, key/value head) group per work item. The group's keys and
// values are packed into micro-panels once (CpuGemm.Panels.cs) and reused by every query row of its query heads;
// scores are computed one micro-panel of query rows (CpuGemm.PanelRows) at a time and only for the key panels that
// row panel can see, so the [T, T] matrix is never held and the tiles above the diagonal are skipped. Forward takes
// each row's max, then exp(s − max) and its sum in one pass, multiplies the row into V and scales the O row by 1/Σ;
// backward rebuilds the probabilities from the saved row log-sum-exp (flash-attention style) for blocks of QueryBlock
// rows, whose dS and P then update dK and dV. Every product tile is the tile Sgemm computes for the same operands
// (same kernel, k order and edge handling); skipped tiles and left-out rows would only have added exact zeros.
// Inputs are read through their strides (any, with a contiguous last dim); tests pin the results to the earlier
// implementation (one Sgemm per 64-row block and product).
internal sealed unsafe partial class CpuBackend
{
    /// <summary>Query rows whose dS and P update dK and dV together (the k depth of those products).</summary>
    private const int QueryBlock = 64;

    /// <summary>The rows of one [B, H, T, D] tensor whose last dim is contiguous: row t of head (b, h) is at
    /// Row(b, h) + t·Ld.</summary>
    private readonly struct HeadRows(Tensor t)
    {
        private readonly nint _p = (nint)Ptr(t);
        private readonly long _batch = t.Strides[0], _head = t.Strides[1];
        public readonly int Ld = t.Strides[2];

        public float* Row(int b, int h) => (float*)_p + b * _batch + h * _head;
    }

    public void CausalAttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, float scale)
    {
        int batch = q.Shape[0], heads = q.Shape[1], t = q.Shape[2], d = q.Shape[3], kvHeads = k.Shape[1];
        int group = heads / kvHeads, mr = CpuGemm.PanelRows, nr = CpuGemm.PanelColumns;
        var (qr, kr, vr, or) = (new HeadRows(q), new HeadRows(k), new HeadRows(v), new HeadRows(o));
        nint lp = (nint)Ptr(lse);
        int tPad = RoundUp(t, nr), dPad = RoundUp(d, nr);
        long keysFloats = (long)tPad * d, valuesFloats = (long)dPad * t, aFloats = CpuGemm.APanelStride(Math.Max(t, d));
        CpuParallel.For(batch * kvHeads, (long)group * t * t * d, (start, end) =>
        {
            Span<float> inverseSums = stackalloc float[mr];
            float* kPanels = Scratch.Get(keysFloats + valuesFloats + aFloats + (long)mr * tPad), vPanels = kPanels + keysFloats, aPanel = vPanels + valuesFloats, s = aPanel + aFloats;
            for (int bkv = start; bkv < end; bkv++)
            {
                int b = bkv / kvHeads, kvh = bkv % kvHeads;
                CpuGemm.PackBPanels(true, d, t, kr.Row(b, kvh), kr.Ld, kPanels);    // Kᵀ: d × T
                CpuGemm.PackBPanels(false, t, d, vr.Row(b, kvh), vr.Ld, vPanels);   // V: T × d
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                {
                    float* qh = qr.Row(b, h), oh = or.Row(b, h), lh = (float*)lp + ((long)b * heads + h) * t;
                    for (int i0 = 0; i0 < t; i0 += mr)
                    {
                        // S = scale·q·kᵀ for this row panel, the key panels it can see only.
                        int rows = Math.Min(mr, t - i0), keys = i0 + rows;
                        CpuGemm.PackAPanels(false, rows, d, qh + (long)i0 * qr.Ld, qr.Ld, aPanel);
                        CpuGemm.MultiplyPanel(d, aPanel, kPanels, (long)d * nr, rows, keys, scale, 0f, s, tPad);
                        for (int r = 0; r < rows; r++)
                        {
                            // exp(s − max) and its sum in one pass; the row is normalized in O.
                            float* row = s + (long)r * tPad;
                            int visible = i0 + r + 1, padded = MaskToVectors(row, visible);
                            var live = new Span<float>(row, padded);
                            float max = TensorPrimitives.Max(live);
                            float sum = NnSimd.ExpShifted(live, max, 0f, 1f, live);
                            new Span<float>(row + padded, Math.Max(0, keys - padded)).Clear();
                            lh[i0 + r] = max + MathF.Log(sum);
                            inverseSums[r] = 1f / sum;
                        }
                        // O = P·V over the keys the panel's last row sees.
                        CpuGemm.PackAPanels(false, rows, keys, s, tPad, aPanel);
                        CpuGemm.MultiplyPanel(keys, aPanel, vPanels, (long)t * nr, rows, d, 1f, 0f, oh + (long)i0 * or.Ld, or.Ld);
                        for (int r = 0; r < rows; r++)
                        {
                            var oRow = new Span<float>(oh + (long)(i0 + r) * or.Ld, d);
                            TensorPrimitives.Multiply(oRow, inverseSums[r], oRow);
                        }
                    }
                }
            }
        });
    }

    public void CausalAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO,
        Tensor dq, Tensor dk, Tensor dv, float scale)
    {
        int batch = q.Shape[0], heads = q.Shape[1], t = q.Shape[2], d = q.Shape[3], kvHeads = k.Shape[1];
        int group = heads / kvHeads, mr = CpuGemm.PanelRows, nr = CpuGemm.PanelColumns;
        var (qr, kr, vr, or, dor) = (new HeadRows(q), new HeadRows(k), new HeadRows(v), new HeadRows(o), new HeadRows(dO));
        var (dqr, dkr, dvr) = (new HeadRows(dq), new HeadRows(dk), new HeadRows(dv));
        nint lp = (nint)Ptr(lse);
        int tPad = RoundUp(t, nr), dPad = RoundUp(d, nr), block = Math.Min(QueryBlock, t);
        long keysFloats = (long)tPad * d, valuesFloats = (long)dPad * t, blockFloats = (long)dPad * block;
        long aFloats = CpuGemm.APanelStride(Math.Max(t, d)), sFloats = (long)block * tPad;
        CpuParallel.For(batch * kvHeads, (long)group * t * t * d * 2, (start, end) =>
        {
            float* kTPanels = Scratch.Get(2 * keysFloats + valuesFloats + 2 * blockFloats + 2 * aFloats + 2 * sFloats), vTPanels = kTPanels + keysFloats, kPanels = vTPanels + keysFloats;
            float* qPanels = kPanels + valuesFloats, doPanels = qPanels + blockFloats;
            float* aPanel = doPanels + blockFloats, aPanel2 = aPanel + aFloats, p = aPanel2 + aFloats, ds = p + sFloats;
            for (int bkv = start; bkv < end; bkv++)
            {
                int b = bkv / kvHeads, kvh = bkv % kvHeads;
                float* kh = kr.Row(b, kvh), vh = vr.Row(b, kvh), dkh = dkr.Row(b, kvh), dvh = dvr.Row(b, kvh);
                CpuGemm.PackBPanels(true, d, t, kh, kr.Ld, kTPanels);   // Kᵀ: d × T, for S
                CpuGemm.PackBPanels(true, d, t, vh, vr.Ld, vTPanels);   // Vᵀ: d × T, for dP
                CpuGemm.PackBPanels(false, t, d, kh, kr.Ld, kPanels);   // K: T × d, for dQ
                ClearRows(dkh, dkr.Ld, t, d);
                ClearRows(dvh, dvr.Ld, t, d);
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                {
                    float* qh = qr.Row(b, h), oh = or.Row(b, h), doh = dor.Row(b, h), dqh = dqr.Row(b, h);
                    float* lh = (float*)lp + ((long)b * heads + h) * t;
                    for (int i0 = 0; i0 < t; i0 += block)
                    {
                        int rows = Math.Min(block, t - i0), keys = i0 + rows;
                        for (int ir = 0; ir < rows; ir += mr)
                        {
                            int panelRows = Math.Min(mr, rows - ir), panelKeys = i0 + ir + panelRows, i = i0 + ir;
                            float* pr0 = p + (long)ir * tPad, dsr0 = ds + (long)ir * tPad;
                            // P = exp(scale·q·kᵀ − lse) and dP = dO·vᵀ over the key panels these rows see.
                            CpuGemm.PackAPanels(false, panelRows, d, qh + (long)i * qr.Ld, qr.Ld, aPanel);
                            CpuGemm.MultiplyPanel(d, aPanel, kTPanels, (long)d * nr, panelRows, panelKeys, scale, 0f, pr0, tPad);
                            CpuGemm.PackAPanels(false, panelRows, d, doh + (long)i * dor.Ld, dor.Ld, aPanel);
                            CpuGemm.MultiplyPanel(d, aPanel, vTPanels, (long)d * nr, panelRows, panelKeys, 1f, 0f, dsr0, tPad);
                            for (int r = 0; r < panelRows; r++)
                            {
                                float* pr = pr0 + (long)r * tPad, dsr = dsr0 + (long)r * tPad;
                                int visible = i + r + 1, padded = MaskToVectors(pr, visible);
                                float rowDot = TensorPrimitives.Dot(new ReadOnlySpan<float>(doh + (long)(i + r) * dor.Ld, d),
                                    new ReadOnlySpan<float>(oh + (long)(i + r) * or.Ld, d));
                                SoftmaxGradientRow(pr, dsr, padded, lh[i + r], rowDot, scale);
                                new Span<float>(pr + padded, Math.Max(0, keys - padded)).Clear();
                                new Span<float>(dsr + visible, keys - visible).Clear(); // dP past the panel's keys is unset
                            }
                            // dQ = dS·K for these rows.
                            CpuGemm.PackAPanels(false, panelRows, panelKeys, dsr0, tPad, aPanel);
                            CpuGemm.MultiplyPanel(panelKeys, aPanel, kPanels, (long)t * nr, panelRows, d, 1f, 0f, dqh + (long)i * dqr.Ld, dqr.Ld);
                        }
                        // dK += dSᵀ·Q and dV += Pᵀ·dO over the block's rows; rows above a key panel hold zeros for it.
                        CpuGemm.PackBPanels(false, rows, d, qh + (long)i0 * qr.Ld, qr.Ld, qPanels);
                        CpuGemm.PackBPanels(false, rows, d, doh + (long)i0 * dor.Ld, dor.Ld, doPanels);
                        for (int j0 = 0; j0 < keys; j0 += mr)
                        {
                            int panelKeys = Math.Min(mr, keys - j0), first = Math.Max(0, j0 - i0), depth = rows - first;
                            CpuGemm.PackAPanels(true, panelKeys, depth, ds + (long)first * tPad + j0, tPad, aPanel);
                            CpuGemm.PackAPanels(true, panelKeys, depth, p + (long)first * tPad + j0, tPad, aPanel2);
                            CpuGemm.MultiplyPanel(depth, aPanel, qPanels + first * nr, (long)rows * nr, panelKeys, d, 1f, 1f, dkh + (long)j0 * dkr.Ld, dkr.Ld);
                            CpuGemm.MultiplyPanel(depth, aPanel2, doPanels + first * nr, (long)rows * nr, panelKeys, d, 1f, 1f, dvh + (long)j0 * dvr.Ld, dvr.Ld);
                        }
                    }
                }
            }
        });
    }

    private static int RoundUp(int x, int m) => (x + m - 1) / m * m;

    /// <summary>
    /// Sets a score row's masked entries up to the next multiple of 16 to −∞ (their exponentials are exact zeros) and
    /// returns that length, so the row passes run whole vectors only; the scratch rows are wide enough (a multiple of
    /// the micro-panel width).
    /// </summary>
    private static int MaskToVectors(float* row, int visible)
    {
        int padded = RoundUp(visible, 16);
        new Span<float>(row + visible, padded - visible).Fill(float.NegativeInfinity);
        return padded;
    }

    /// <summary>Over one row: p = exp(s − lse) written over s, and dS = (dP − rowDot)·p·scale written over dP.</summary>
    private static void SoftmaxGradientRow(float* s, float* dp, int n, float lse, float rowDot, float scale)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vl = Vector256.Create(lse);
            var vd = Vector256.Create(rowDot);
            var vs = Vector256.Create(scale);
            for (; i <= n - 8; i += 8)
            {
                var p = Vector256.Exp(Vector256.Load(s + i) - vl);
                p.Store(s + i);
                ((Vector256.Load(dp + i) - vd) * p * vs).Store(dp + i);
            }
        }
        for (; i < n; i++)
        {
            float p = MathF.Exp(s[i] - lse);
            s[i] = p;
            dp[i] = (dp[i] - rowDot) * p * scale;
        }
    }

    private static void ClearRows(float* p, int ld, int rows, int cols)
    {
        for (int r = 0; r < rows; r++) new Span<float>(p + (long)r * ld, cols).Clear();
    }

    /// <summary>
    /// The calling thread's attention scratch (64-byte aligned), grown on demand and kept, as the GEMM keeps its
    /// packing buffers: a work item needs a few hundred KiB, and memory that size freshly allocated is fresh pages
    /// to fault in on every call (measured: the packing of keys and values took 12 % of the forward pass that way).
    /// </summary>
    private sealed class Scratch
    {
        [ThreadStatic] private static Scratch? t_current;
        private float* _p;
        private long _floats;

        public static float* Get(long floats)
        {
            var s = t_current ??= new Scratch();
            if (floats > s._floats)
            {
                NativeMemory.AlignedFree(s._p);
                s._p = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
                s._floats = floats;
            }
            return s._p;
        }

        ~Scratch() => NativeMemory.AlignedFree(_p);
    }
}
