using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;

namespace TensorLite.Ilgpu;

// Indexing, selection, dropout and dtype-converting copy kernels (the CPU reference is CpuBackend.Indexing.cs).
//
// Index tensors are passed as 32-bit words plus a `wide` flag: int32 indices are read directly, int64 ones
// through a cast of the same view, so one kernel serves both index dtypes. All kernels are implicitly grouped.
// The accumulating kernels (IndexAdd, ScatterAdd) give every destination element to exactly one thread, which
// adds its contributions in index order: no atomics, and the float result is the CPU backend's bit for bit.
public static partial class IlgpuKernels
{
    private static long IndexValue(ArrayView<int> index, int wide, long position) =>
        wide != 0 ? index.Cast<long>()[position] : index[position];

    // ---- range check --------------------------------------------------------------------------------

    /// <summary>Lowers found[0] (which starts at the index count) to the position of every out-of-range entry; the
    /// minimum wins whatever order the threads run in.</summary>
    public static void FindIndexOutOfRange(Index1D i, ArrayView<int> index, int wide, long size, ArrayView<long> found)
    {
        long v = IndexValue(index, wide, i);
        if (v < 0 || v >= size) Atomic.Min(ref found[0], (long)(int)i);
    }

    /// <summary>One thread: found[1] = the index entry at position found[0], when one was found.</summary>
    public static void FetchOutOfRangeValue(Index1D i, ArrayView<int> index, int wide, long count, ArrayView<long> found)
    {
        long position = found[0];
        found[1] = position < count ? IndexValue(index, wide, position) : 0;
    }

    // ---- index_select / index_add -------------------------------------------------------------------

    /// <summary>y[o, j, c] = x[o, index[j], c] for x split as [outer, n, inner]; one thread per element of y.
    /// Generic over the element width, so any dtype is moved as raw bits.</summary>
    public static void IndexSelectElements<T>(Index1D i, ArrayView<T> x, ArrayView<T> y, ArrayView<int> index, int wide,
        int n, int k, int inner) where T : unmanaged
    {
        int row = i / inner, c = i - row * inner;
        int o = row / k, j = row - o * k;
        y[i] = x[((long)o * n + IndexValue(index, wide, j)) * inner + c];
    }

    /// <summary>y[o, index[j], c] += src[o, j, c] for j = 0..k-1 in order; one thread per (o, c) column, so repeated
    /// indices accumulate in index order without atomics. Adjacent threads touch adjacent columns (coalesced).</summary>
    public static void IndexAddColumns(Index1D i, ArrayView<float> y, ArrayView<float> src, ArrayView<int> index, int wide,
        int n, int k, int inner)
    {
        int o = i / inner, c = i - o * inner;
        long yBase = (long)o * n * inner + c, srcBase = (long)o * k * inner + c;
        for (int j = 0; j < k; j++)
            y[yBase + IndexValue(index, wide, j) * inner] += src[srcBase + (long)j * inner];
    }

    // ---- gather / scatter_add -----------------------------------------------------------------------

    /// <summary>y[p] = x[p with the axis coordinate replaced by index[p]]; one thread per element of y. The layout is
    /// the index shape with x's strides (the axis stride zeroed) in its first set, so it yields x's offset without
    /// the axis term.</summary>
    public static void GatherElements(Index1D i, ArrayView<float> x, ArrayView<float> y, ArrayView<int> index, int wide,
        StridedLayout l, int xAxisStride)
    {
        l.Offsets(i, out int xBase, out _, out _);
        y[i] = x[xBase + IndexValue(index, wide, i) * xAxisStride];
    }

    /// <summary>y[p with the axis coordinate replaced by index[p]] += src[p], one thread per line along the axis (the
    /// index shape with the axis dropped, y's strides in the first set, the index's in the second). A line's targets
    /// share its other coordinates, so no other thread touches them and the thread adds them in axis order.</summary>
    public static void ScatterAddLines(Index1D i, ArrayView<float> y, ArrayView<float> src, ArrayView<int> index, int wide,
        StridedLayout l, int along, int indexAxisStride, int yAxisStride)
    {
        l.Offsets(i, out int yBase, out int indexBase, out _);
        for (int t = 0; t < along; t++)
        {
            long p = indexBase + (long)t * indexAxisStride;
            y[yBase + IndexValue(index, wide, p) * yAxisStride] += src[p];
        }
    }

    // ---- where --------------------------------------------------------------------------------------

    /// <summary>y[i] = condition ≠ 0 ? a : b over views broadcast to y's (contiguous) shape. The condition is read as
    /// raw bits of <paramref name="conditionSize"/> bytes and masked with <paramref name="valueMask"/> (the sign bit
    /// cleared for float dtypes, so ±0 counts as zero and NaN as nonzero, as on the CPU backend).</summary>
    public static void WhereSelect(Index1D i, ArrayView<byte> condition, ArrayView<float> a, ArrayView<float> b,
        ArrayView<float> y, StridedLayout l, int conditionSize, ulong valueMask)
    {
        l.Offsets(i, out int c, out int ia, out int ib);
        ulong bits;
        if (conditionSize == 1) bits = condition[c];
        else if (conditionSize == 2) bits = condition.Cast<ushort>()[c];
        else if (conditionSize == 4) bits = condition.Cast<uint>()[c];
        else bits = condition.Cast<ulong>()[c];
        y[i] = (bits & valueMask) != 0 ? a[ia] : b[ib];
    }

    // ---- dropout ------------------------------------------------------------------------------------

    /// <summary>Inverted dropout with the CPU backend's keep rule: element i is kept when the top 24 bits of
    /// Mix32(Mix32(i ^ k0) + k1) are at least the threshold, so both backends draw the same mask.</summary>
    public static void DropoutMask(Index1D i, ArrayView<float> x, ArrayView<float> y, uint k0, uint k1, uint threshold, float scale)
    {
        uint h = Mix32(Mix32((uint)(int)i ^ k0) + k1);
        y[i] = h >> 8 >= threshold ? x[i] * scale : 0f;
    }

    /// <summary>The murmur3 32-bit finalizer.</summary>
    // ---- dtype-converting copy ----------------------------------------------------------------------

    /// <summary>Strided copy between any two dtypes, exactly as the CPU backend's generic path: the source element is
    /// read as a double (see <see cref="ReadElement"/>), float targets round it to their format, integer targets
    /// round half to even and saturate (NaN → 0). Views are bytes at the tensors' offsets; the layout's strides count
    /// elements of each dtype.</summary>
    public static void CopyConvert(Index1D i, ArrayView<byte> src, ArrayView<byte> dst, StridedLayout l, int srcType, int dstType)
    {
        l.Offsets(i, out int s, out int d, out _);
        WriteElement(dst, d, (DType)dstType, ReadElement(src, s, (DType)srcType));
    }

    /// <summary>The element as a double, as the CPU backend reads it: exact for every float and int32 and for int64 up to
    /// 2^53, so integer-to-integer copies keep their values.</summary>
    private static double ReadElement(ArrayView<byte> v, int i, DType type)
    {
        switch (type)
        {
            case DType.Float32: return v.Cast<float>()[i];
            case DType.BFloat16: return Interop.IntAsFloat((uint)v.Cast<ushort>()[i] << 16);
            case DType.Float16: return HalfBitsToFloat(v.Cast<ushort>()[i]);
            case DType.Int8: return (sbyte)v[i];
            case DType.UInt8: return v[i];
            case DType.Int32: return v.Cast<int>()[i];
            default: return v.Cast<long>()[i];
        }
    }

    private static void WriteElement(ArrayView<byte> v, int i, DType type, double value)
    {
        switch (type)
        {
            case DType.Float32: v.Cast<float>()[i] = (float)value; break;
            case DType.BFloat16: v.Cast<ushort>()[i] = FloatToBFloat16((float)value); break;
            case DType.Float16: v.Cast<ushort>()[i] = FloatToHalfBits((float)value); break;
            case DType.Int8: v[i] = (byte)(sbyte)RoundSaturated(value, sbyte.MinValue, sbyte.MaxValue); break;
            case DType.UInt8: v[i] = (byte)RoundSaturated(value, byte.MinValue, byte.MaxValue); break;
            case DType.Int32: v.Cast<int>()[i] = (int)RoundSaturated(value, int.MinValue, int.MaxValue); break;
            default: v.Cast<long>()[i] = RoundSaturated(value, long.MinValue, long.MaxValue); break;
        }
    }

    /// <summary>Round half to even, then clamp to [min, max]; NaN → 0. Written out (floor, compare) rather than left
    /// to a conversion instruction so the CPU accelerator and PTX agree on ties, overflow and NaN.</summary>
    private static long RoundSaturated(double value, long min, long max)
    {
        if (XMath.IsNaN(value)) return 0;
        double r = XMath.Floor(value);
        double fraction = value - r;                 // exact; NaN for ±∞, which then falls through to the clamps
        if (fraction > 0.5 || (fraction == 0.5 && r - 2.0 * XMath.Floor(r * 0.5) != 0.0)) r += 1.0;
        if (r <= min) return min;
        if (r >= max) return max;                    // (double)long.MaxValue is 2^63, beyond the range: saturate
        return (long)r;
    }

    private static IEnumerable<(MethodInfo, bool)> IndexingKernels()
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.Static;
        MethodInfo M(string name) => typeof(IlgpuKernels).GetMethod(name, flags)!;
        foreach (var t in new[] { typeof(byte), typeof(ushort), typeof(uint), typeof(ulong) })
            yield return (M(nameof(IndexSelectElements)).MakeGenericMethod(t), false);
        foreach (var name in new[] { nameof(FindIndexOutOfRange), nameof(FetchOutOfRangeValue), nameof(IndexAddColumns),
                     nameof(GatherElements), nameof(ScatterAddLines), nameof(WhereSelect), nameof(DropoutMask), nameof(CopyConvert) })
            yield return (M(name), false);
    }
}
