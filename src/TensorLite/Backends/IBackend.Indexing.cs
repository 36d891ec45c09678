namespace TensorLite;

// Kernels of the indexing, selection and dropout ops (Ops/Indexing.cs, Ops/Joining.cs, Ops/Masking.cs).
// Index tensors are contiguous int32 or int64 tensors whose values the op has already checked with
// FindIndexOutOfRange. "x split at axis" means x viewed as [outer, n, inner], n = x.Shape[axis].
public partial interface IBackend
{
    /// <summary>The flat position of the first element of a contiguous int32/int64 tensor outside
    /// [0, <paramref name="size"/>), or -1 when all are in range; <paramref name="value"/> receives that element.</summary>
    long FindIndexOutOfRange(Tensor index, long size, out long value);

    /// <summary>y[o, j, i] = x[o, index[j], i] with x contiguous of any dtype split at <paramref name="axis"/>, the
    /// index read as a flat list of k = index.Numel entries, and y contiguous of x's dtype with outer·k·inner elements.</summary>
    void IndexSelect(Tensor x, int axis, Tensor index, Tensor y);

    /// <summary>y[o, index[j], i] += src[o, j, i] with y contiguous float32 split at <paramref name="axis"/> and src
    /// contiguous float32 with outer·k·inner elements. Repeated indices accumulate in index order (deterministic).</summary>
    void IndexAdd(Tensor y, int axis, Tensor index, Tensor src);

    /// <summary>y[p] = x[p with its <paramref name="axis"/> coordinate replaced by index[p]]: index and y are contiguous
    /// and of one shape, no larger than contiguous float32 x off the axis.</summary>
    void Gather(Tensor x, int axis, Tensor index, Tensor y);

    /// <summary>y[p with its <paramref name="axis"/> coordinate replaced by index[p]] += src[p]: index and src are
    /// contiguous and of one shape, no larger than contiguous float32 y off the axis. Deterministic.</summary>
    void ScatterAdd(Tensor y, int axis, Tensor index, Tensor src);

    /// <summary>y = condition ≠ 0 ? a : b, where condition (any dtype) and float32 a and b are views already broadcast
    /// to y's shape (zero strides allowed, any strides) and y is contiguous float32.</summary>
    void Where(Tensor condition, Tensor a, Tensor b, Tensor y);

    /// <summary>Inverted dropout of contiguous float32 x into y: y[i] = x[i]/(1−p) when element i is kept, else 0.
    /// Whether element i is kept is a pure function of (<paramref name="seed"/>, i) with probability 1−p, so the
    /// same call on the output gradient applies the same mask.</summary>
    void Dropout(Tensor x, Tensor y, float p, ulong seed);
}
