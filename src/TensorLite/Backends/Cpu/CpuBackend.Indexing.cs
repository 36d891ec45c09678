using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

// Indexing, selection and dropout kernels. Row copies are memcpy, row accumulations TensorPrimitives.Add;
// every accumulating kernel gives each destination element to one thread, which adds its contributions in
// index order, so results do not depend on the thread count.
internal sealed unsafe partial class CpuBackend
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long IndexAt(nint index, bool wide, long position) =>
        wide ? ((long*)index)[position] : ((int*)index)[position];

    private static void SplitAt(ReadOnlySpan<int> shape, int axis, out int outer, out int n, out int inner)
    {
        outer = 1;
        inner = 1;
        for (int i = 0; i < axis; i++) outer *= shape[i];
        for (int i = axis + 1; i < shape.Length; i++) inner *= shape[i];
        n = shape[axis];
    }

    public long FindIndexOutOfRange(Tensor index, long size, out long value)
    {
        byte* p = BytePtr(index);
        int count = index.Numel;
        if (index.DType == DType.Int64)
        {
            var s = new ReadOnlySpan<long>(p, count);
            for (int i = 0; i < s.Length; i++)
                if ((ulong)s[i] >= (ulong)size) { value = s[i]; return i; }
        }
        else
        {
            var s = new ReadOnlySpan<int>(p, count);
            for (int i = 0; i < s.Length; i++)
                if ((ulong)(long)s[i] >= (ulong)size) { value = s[i]; return i; }
        }
        value = 0;
        return -1;
    }

    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y)
    {
        SplitAt(x.Shape, axis, out int outer, out int n, out int inner);
        int k = index.Numel;
        int elementSize = x.DType.SizeInBytes();
        long rowBytes = (long)inner * elementSize;
        nint xp = (nint)BytePtr(x), yp = (nint)BytePtr(y), ip = (nint)BytePtr(index);
        bool wide = index.DType == DType.Int64;
        int rows = outer * k;
        if (rows == 0 || inner == 0) return;
        if (inner == 1 && elementSize == 4)
        {
            // Selecting along the last axis: single elements, no memcpy call per element.
            CpuParallel.For(rows, 1, (start, end) =>
            {
                int* xs = (int*)xp, ys = (int*)yp;
                for (int r = start; r < end; r++)
                {
                    int o = r / k, j = r - o * k;
                    ys[r] = xs[(long)o * n + IndexAt(ip, wide, j)];
                }
            });
            return;
        }
        CpuParallel.For(rows, inner, (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                int o = r / k, j = r - o * k;
                byte* src = (byte*)xp + ((long)o * n + IndexAt(ip, wide, j)) * rowBytes;
                Buffer.MemoryCopy(src, (byte*)yp + r * rowBytes, rowBytes, rowBytes);
            }
        });
    }

    public void IndexAdd(Tensor y, int axis, Tensor index, Tensor src)
    {
        SplitAt(y.Shape, axis, out int outer, out int n, out int inner);
        int k = index.Numel;
        if (k == 0 || outer == 0 || inner == 0) return;
        nint yp = (nint)Ptr(y), sp = (nint)Ptr(src), ip = (nint)BytePtr(index);
        bool wide = index.DType == DType.Int64;
        if (outer >= CpuParallel.Threads || inner < 256)
        {
            // Disjoint outer blocks per thread.
            CpuParallel.For(outer, (long)k * inner, (start, end) =>
            {
                for (int o = start; o < end; o++)
                    AccumulateRows((float*)yp + (long)o * n * inner, (float*)sp + (long)o * k * inner, ip, wide, k, inner, 0, inner);
            });
            return;
        }
        // Few outer blocks of long rows (an embedding gradient): disjoint column ranges per thread.
        CpuParallel.For(inner, (long)outer * k, (c0, c1) =>
        {
            for (int o = 0; o < outer; o++)
                AccumulateRows((float*)yp + (long)o * n * inner, (float*)sp + (long)o * k * inner, ip, wide, k, inner, c0, c1);
        });
    }

    /// <summary>dst[index[j], c0..c1) += src[j, c0..c1) for j in order, rows of length <paramref name="inner"/>.</summary>
    private static void AccumulateRows(float* dst, float* src, nint ip, bool wide, int k, int inner, int c0, int c1)
    {
        int width = c1 - c0;
        for (int j = 0; j < k; j++)
        {
            float* d = dst + IndexAt(ip, wide, j) * inner + c0;
            float* s = src + (long)j * inner + c0;
            if (width == 1) { *d += *s; continue; }
            var ds = new Span<float>(d, width);
            TensorPrimitives.Add(ds, new ReadOnlySpan<float>(s, width), ds);
        }
    }

    public void Gather(Tensor x, int axis, Tensor index, Tensor y) => GatherScatter(scatter: false, x, axis, index, y);

    public void ScatterAdd(Tensor y, int axis, Tensor index, Tensor src) => GatherScatter(scatter: true, y, axis, index, src);

    /// <summary>
    /// Walks the index tensor (shape I) in groups: every coordinate except the axis (and, when the axis is not
    /// the last dim, except the last dim, which forms a contiguous run). A group visits its axis positions in
    /// order, so a scatter gives each group — whose targets no other group touches — to one thread.
    /// </summary>
    private static void GatherScatter(bool scatter, Tensor target, int axis, Tensor index, Tensor data)
    {
        int rank = index.Rank;
        var shape = index.ShapeArray;
        var targetStrides = target.Strides.ToArray();
        var indexStrides = ShapeMath.ContiguousStrides(shape);
        int last = rank - 1;
        int run = axis == last ? 1 : shape[last];
        int along = shape[axis];
        var groupDims = Enumerable.Range(0, rank).Where(d => d != axis && (axis == last || d != last)).ToArray();
        int groups = 1;
        foreach (int d in groupDims) groups *= shape[d];
        if (groups == 0 || along == 0 || run == 0) return;
        nint tp = (nint)Ptr(target), dp = (nint)Ptr(data), ip = (nint)BytePtr(index);
        bool wide = index.DType == DType.Int64;
        long axisStride = targetStrides[axis], lastStride = targetStrides[last];
        long indexAxisStride = indexStrides[axis];

        void Group(int g, int t0, int t1)
        {
            long targetBase = 0, indexBase = 0;
            int rem = g;
            for (int q = groupDims.Length - 1; q >= 0; q--)
            {
                int d = groupDims[q];
                int c = rem % shape[d];
                rem /= shape[d];
                targetBase += (long)c * targetStrides[d];
                indexBase += (long)c * indexStrides[d];
            }
            float* tgt = (float*)tp + targetBase;
            float* dat = (float*)dp;
            for (int t = t0; t < t1; t++)
            {
                long p = indexBase + t * indexAxisStride;
                if (run == 1)
                {
                    float* e = tgt + IndexAt(ip, wide, p) * axisStride;
                    if (scatter) *e += dat[p]; else dat[p] = *e;
                    continue;
                }
                for (int i = 0; i < run; i++)
                {
                    float* e = tgt + IndexAt(ip, wide, p + i) * axisStride + i * lastStride;
                    if (scatter) *e += dat[p + i]; else dat[p + i] = *e;
                }
            }
        }

        if (scatter)
        {
            CpuParallel.For(groups, (long)along * run, (start, end) =>
            {
                for (int g = start; g < end; g++) Group(g, 0, along);
            });
        }
        else
        {
            // A gather writes each output element once: split over (group, axis position) pairs.
            CpuParallel.For(groups * along, run, (start, end) =>
            {
                for (int r = start; r < end; r++)
                {
                    int g = r / along, t = r - g * along;
                    Group(g, t, t + 1);
                }
            });
        }
    }

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y)
    {
        if (y.Numel == 0) return;
        var loop = new StridedLoop(y.Shape, condition.Strides.ToArray(), a.Strides.ToArray(), b.Strides.ToArray(), y.Strides.ToArray());
        int n = loop.RowLength;
        int sc = loop.RowStride(0), sa = loop.RowStride(1), sb = loop.RowStride(2);
        int conditionSize = condition.DType.SizeInBytes();
        DType ct = condition.DType;
        nint cp = (nint)BytePtr(condition), ap = (nint)Ptr(a), bp = (nint)Ptr(b), yp = (nint)Ptr(y);
        CpuParallel.For(loop.RowCount, n, (start, end) =>
        {
            for (int row = start; row < end; row++)
            {
                byte* c = (byte*)cp + (long)loop.RowOffset(0, row) * conditionSize;
                float* ar = (float*)ap + loop.RowOffset(1, row);
                float* br = (float*)bp + loop.RowOffset(2, row);
                float* yr = (float*)yp + loop.RowOffset(3, row);
                switch (ct)
                {
                    case DType.Float32: WhereRow((float*)c, sc, ar, sa, br, sb, yr, n); break;
                    case DType.BFloat16 or DType.Float16: WhereHalfRow((ushort*)c, sc, ar, sa, br, sb, yr, n); break;
                    case DType.Int8: WhereRow((sbyte*)c, sc, ar, sa, br, sb, yr, n); break;
                    case DType.UInt8: WhereRow(c, sc, ar, sa, br, sb, yr, n); break;
                    case DType.Int32: WhereRow((int*)c, sc, ar, sa, br, sb, yr, n); break;
                    case DType.Int64: WhereRow((long*)c, sc, ar, sa, br, sb, yr, n); break;
                }
            }
        });
    }

    private static void WhereRow<T>(T* c, int sc, float* a, int sa, float* b, int sb, float* y, int n)
        where T : unmanaged, INumberBase<T>
    {
        int i = 0;
        if (typeof(T) == typeof(float) && sc == 1 && sa == 1 && sb == 1 && Vector.IsHardwareAccelerated)
        {
            int width = Vector<float>.Count;
            for (; i <= n - width; i += width)
            {
                var take = ~Vector.Equals(Vector.Load((float*)c + i), Vector<float>.Zero);
                Vector.ConditionalSelect(take, Vector.Load(a + i), Vector.Load(b + i)).Store(y + i);
            }
        }
        for (; i < n; i++)
            y[i] = c[(long)i * sc] != T.Zero ? a[(long)i * sa] : b[(long)i * sb];
    }

    /// <summary>16-bit float conditions: nonzero unless ±0 (NaN counts as nonzero, as in float32).</summary>
    private static void WhereHalfRow(ushort* c, int sc, float* a, int sa, float* b, int sb, float* y, int n)
    {
        for (int i = 0; i < n; i++)
            y[i] = (c[(long)i * sc] & 0x7FFF) != 0 ? a[(long)i * sa] : b[(long)i * sb];
    }

    public void Dropout(Tensor x, Tensor y, float p, ulong seed)
    {
        // Keep element i when the top 24 bits of its hash are at least p·2^24.
        uint threshold = (uint)Math.Ceiling(p * 16777216.0);
        float scale = 1f / (1f - p);
        uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
        nint xp = (nint)Ptr(x), yp = (nint)Ptr(y);
        CpuParallel.For(x.Numel, 4, (start, end) =>
        {
            float* xs = (float*)xp, ys = (float*)yp;
            int i = start;
            if (Vector.IsHardwareAccelerated)
            {
                int width = Vector<uint>.Count;
                var position = Vector<uint>.Indices + new Vector<uint>((uint)start);
                var step = new Vector<uint>((uint)width);
                var k0v = new Vector<uint>(k0);
                var k1v = new Vector<uint>(k1);
                var thresholdV = new Vector<uint>(threshold);
                for (; i <= end - width; i += width)
                {
                    var h = Mix32(Mix32(position ^ k0v) + k1v);
                    var keep = Vector.AsVectorInt32(Vector.GreaterThanOrEqual(h >> 8, thresholdV));
                    Vector.ConditionalSelect(keep, Vector.Load(xs + i) * scale, Vector<float>.Zero).Store(ys + i);
                    position += step;
                }
            }
            for (; i < end; i++)
                ys[i] = DropoutKeeps(k0, k1, i, threshold) ? xs[i] * scale : 0f;
        });
    }

    /// <summary>Whether dropout keeps element <paramref name="position"/>: a counter-based hash (two keyed rounds of
    /// the murmur3 finalizer) of the position, so the mask does not depend on how the loop is split.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool DropoutKeeps(uint k0, uint k1, int position, uint threshold) =>
        Mix32(Mix32((uint)position ^ k0) + k1) >> 8 >= threshold;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Mix32(uint h)
    {
        h = (h ^ (h >> 16)) * 0x85EBCA6Bu;
        h = (h ^ (h >> 13)) * 0xC2B2AE35u;
        return h ^ (h >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<uint> Mix32(Vector<uint> h)
    {
        h = (h ^ (h >> 16)) * 0x85EBCA6Bu;
        h = (h ^ (h >> 13)) * 0xC2B2AE35u;
        return h ^ (h >> 16);
    }
}
