using ILGPU;
using ILGPU.Runtime;

namespace TensorLite.Ilgpu;

// Indexing, selection and dropout (IBackend.Indexing.cs) over the kernels in IndexingKernels.cs, plus the
// dtype-converting copy that IlgpuBackend.Copy falls back to. Index tensors are contiguous int32 or int64.
public sealed partial class IlgpuBackend
{
    private readonly IndexKernelSet _index;

    /// <summary>The indexing kernel delegates, loaded once when the backend is created.</summary>
    private sealed class IndexKernelSet(Accelerator a)
    {
        public readonly Action<Index1D, ArrayView<int>, int, long, ArrayView<long>> FindOutOfRange =
            a.LoadElementwiseKernel<Index1D, ArrayView<int>, int, long, ArrayView<long>>(IlgpuKernels.FindIndexOutOfRange);

        public readonly Action<Index1D, ArrayView<int>, int, long, ArrayView<long>> FetchOutOfRangeValue =
            a.LoadElementwiseKernel<Index1D, ArrayView<int>, int, long, ArrayView<long>>(IlgpuKernels.FetchOutOfRangeValue);

        public readonly Action<Index1D, ArrayView<byte>, ArrayView<byte>, ArrayView<int>, int, int, int, int> IndexSelect8 =
            a.LoadElementwiseKernel<Index1D, ArrayView<byte>, ArrayView<byte>, ArrayView<int>, int, int, int, int>(IlgpuKernels.IndexSelectElements);

        public readonly Action<Index1D, ArrayView<ushort>, ArrayView<ushort>, ArrayView<int>, int, int, int, int> IndexSelect16 =
            a.LoadElementwiseKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, ArrayView<int>, int, int, int, int>(IlgpuKernels.IndexSelectElements);

        public readonly Action<Index1D, ArrayView<uint>, ArrayView<uint>, ArrayView<int>, int, int, int, int> IndexSelect32 =
            a.LoadElementwiseKernel<Index1D, ArrayView<uint>, ArrayView<uint>, ArrayView<int>, int, int, int, int>(IlgpuKernels.IndexSelectElements);

        public readonly Action<Index1D, ArrayView<ulong>, ArrayView<ulong>, ArrayView<int>, int, int, int, int> IndexSelect64 =
            a.LoadElementwiseKernel<Index1D, ArrayView<ulong>, ArrayView<ulong>, ArrayView<int>, int, int, int, int>(IlgpuKernels.IndexSelectElements);

        public readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int, int, int> IndexAdd =
            a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int, int, int>(IlgpuKernels.IndexAddColumns);

        public readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, StridedLayout, int> Gather =
            a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, StridedLayout, int>(IlgpuKernels.GatherElements);

        public readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, StridedLayout, int, int, int> ScatterAdd =
            a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, StridedLayout, int, int, int>(IlgpuKernels.ScatterAddLines);

        public readonly Action<Index1D, ArrayView<byte>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StridedLayout, int, ulong> Where =
            a.LoadElementwiseKernel<Index1D, ArrayView<byte>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StridedLayout, int, ulong>(IlgpuKernels.WhereSelect);

        public readonly Action<Index1D, ArrayView<float>, ArrayView<float>, uint, uint, uint, float> Dropout =
            a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, uint, uint, uint, float>(IlgpuKernels.DropoutMask);

        public readonly Action<Index1D, ArrayView<byte>, ArrayView<byte>, StridedLayout, int, int> CopyConvert =
            a.LoadElementwiseKernel<Index1D, ArrayView<byte>, ArrayView<byte>, StridedLayout, int, int>(IlgpuKernels.CopyConvert);
    }

    /// <summary>An index tensor as 32-bit words and whether its entries are int64 (two words each).</summary>
    private (ArrayView<int> Words, int Wide) IndexWords(Tensor index) => index.DType switch
    {
        DType.Int32 => (View<int>(index), 0),
        DType.Int64 => (View<long>(index).Cast<int>(), 1),
        _ => throw new NotSupportedException($"Index tensors of dtype {index.DType.Name()} (int32 or int64 only)."),
    };

    /// <summary>The tensor's storage as bytes from its first element to the end of the buffer (for kernels that
    /// address elements of a dtype chosen at run time through a cast of this view).</summary>
    private ArrayView<byte> BytesFromOffset(Tensor t)
    {
        var v = StorageOf(t).View;
        long start = (long)t.Offset * t.DType.SizeInBytes();
        return v.SubView(start, v.Length - start);
    }

    /// <summary>Copy between dtypes that have no dedicated kernel (anything to or from an integer dtype,
    /// bfloat16 ↔ float16): one generic kernel that converts element by element like the CPU backend.</summary>
    private void CopyConverting(Tensor source, Tensor destination, StridedLayout l) =>
        _index.CopyConvert(source.Numel, BytesFromOffset(source), BytesFromOffset(destination), l,
            (int)source.DType, (int)destination.DType);

    // ---- range check --------------------------------------------------------------------------------

    public long FindIndexOutOfRange(Tensor index, long size, out long value)
    {
        value = 0;
        int count = index.Numel;
        if (count == 0) return -1;
        var (words, wide) = IndexWords(index);
        // found = [first bad position (count when none), its value]; one 16-byte read-back at the end.
        using var found = Tensor.Empty([2], DType.Int64, this);
        var foundView = View<long>(found);
        _fill64(1, foundView.Cast<ulong>(), (ulong)count);
        _index.FindOutOfRange(count, words, wide, size, foundView);
        _index.FetchOutOfRangeValue(1, words, wide, count, foundView);
        Span<long> host = stackalloc long[2];
        _accelerator.Synchronize();
        foundView.SubView(0, 2).CopyToCPU(host);
        if (host[0] >= count) return -1;
        value = host[1];
        return host[0];
    }

    // ---- index_select / index_add -------------------------------------------------------------------

    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y)
    {
        var (outer, n, inner) = ShapeMath.SplitAxis(x.Shape, axis);
        int k = index.Numel;
        int total = outer * k * inner;
        if (total == 0) return;
        var (words, wide) = IndexWords(index);
        switch (x.DType.SizeInBytes())
        {
            case 1: _index.IndexSelect8(total, View<byte>(x), View<byte>(y), words, wide, n, k, inner); break;
            case 2: _index.IndexSelect16(total, View<ushort>(x), View<ushort>(y), words, wide, n, k, inner); break;
            case 4: _index.IndexSelect32(total, View<uint>(x), View<uint>(y), words, wide, n, k, inner); break;
            default: _index.IndexSelect64(total, View<ulong>(x), View<ulong>(y), words, wide, n, k, inner); break;
        }
    }

    public void IndexAdd(Tensor y, int axis, Tensor index, Tensor src)
    {
        RequireFloat32("IndexAdd", y, src);
        var (outer, n, inner) = ShapeMath.SplitAxis(y.Shape, axis);
        int k = index.Numel;
        if (k == 0 || outer == 0 || inner == 0) return;
        var (words, wide) = IndexWords(index);
        _index.IndexAdd(outer * inner, View<float>(y), View<float>(src), words, wide, n, k, inner);
    }

    // ---- gather / scatter_add -----------------------------------------------------------------------

    public void Gather(Tensor x, int axis, Tensor index, Tensor y)
    {
        RequireFloat32("Gather", x, y);
        int count = index.Numel;
        if (count == 0) return;
        var xStrides = x.Strides.ToArray();
        int axisStride = xStrides[axis];
        xStrides[axis] = 0;   // the axis term comes from the index entry
        var l = StridedLayout.Create(index.Shape, xStrides);
        var (words, wide) = IndexWords(index);
        _index.Gather(count, View<float>(x), View<float>(y), words, wide, l, axisStride);
    }

    public void ScatterAdd(Tensor y, int axis, Tensor index, Tensor src)
    {
        RequireFloat32("ScatterAdd", y, src);
        var shape = index.ShapeArray;
        int along = shape[axis];
        if (index.Numel == 0) return;
        var indexStrides = ShapeMath.ContiguousStrides(shape);
        int indexAxisStride = indexStrides[axis], yAxisStride = y.Strides[axis];
        shape[axis] = 1;      // one thread per line along the axis
        int lines = index.Numel / along;
        var l = StridedLayout.Create(shape, y.Strides, indexStrides);
        var (words, wide) = IndexWords(index);
        _index.ScatterAdd(lines, View<float>(y), View<float>(src), words, wide, l, along, indexAxisStride, yAxisStride);
    }

    // ---- where / dropout ----------------------------------------------------------------------------

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y)
    {
        RequireFloat32("Where", a, b, y);
        if (y.Numel == 0) return;
        // Float conditions ignore the sign bit so -0 is false; integer conditions use every bit.
        ulong valueMask = condition.DType switch
        {
            DType.Float32 => 0x7FFF_FFFFUL,
            DType.BFloat16 or DType.Float16 => 0x7FFFUL,
            _ => ulong.MaxValue,
        };
        var l = StridedLayout.Create(y.Shape, condition.Strides, a.Strides, b.Strides);
        _index.Where(y.Numel, BytesFromOffset(condition), View<float>(a), View<float>(b), View<float>(y), l,
            condition.DType.SizeInBytes(), valueMask);
    }

    public void Dropout(Tensor x, Tensor y, float p, ulong seed)
    {
        RequireFloat32("Dropout", x, y);
        if (x.Numel == 0) return;
        // The same threshold and scale as the CPU backend, computed the same way on the host.
        uint threshold = (uint)Math.Ceiling(p * 16777216.0);
        float scale = 1f / (1f - p);
        _index.Dropout(x.Numel, View<float>(x), View<float>(y), (uint)seed, (uint)(seed >> 32), threshold, scale);
    }
}
