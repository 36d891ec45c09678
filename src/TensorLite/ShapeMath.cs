namespace TensorLite;

/// <summary>Shape and stride arithmetic shared by every op.</summary>
internal static class ShapeMath
{
    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    public static int Numel(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            n *= d;
            if (n > int.MaxValue)
                throw new TensorLiteException($"Shape {Format(shape)} has more than {int.MaxValue} elements, the per-tensor limit.");
        }
        return (int)n;
    }

    public static void Validate(ReadOnlySpan<int> shape)
    {
        foreach (int d in shape)
            if (d < 0) throw new ShapeMismatchException($"Shape {Format(shape)} has a negative dimension.");
        Numel(shape);
    }

    public static int[] ContiguousStrides(ReadOnlySpan<int> shape)
    {
        var strides = new int[shape.Length];
        int s = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= Math.Max(1, shape[i]);
        }
        return strides;
    }

    public static bool IsContiguous(ReadOnlySpan<int> shape, ReadOnlySpan<int> strides)
    {
        int expected = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] == 1) continue;
            if (strides[i] != expected) return false;
            expected *= shape[i];
        }
        return true;
    }

    public static int NormalizeDim(int dim, int rank)
    {
        int d = dim < 0 ? dim + rank : dim;
        if (d < 0 || d >= rank)
            throw new ArgumentOutOfRangeException(nameof(dim), $"Dimension {dim} is out of range for a tensor of rank {rank}.");
        return d;
    }

    /// <summary>The NumPy broadcast of two shapes, or a <see cref="ShapeMismatchException"/> naming both.</summary>
    public static int[] Broadcast(ReadOnlySpan<int> a, ReadOnlySpan<int> b, string op = "broadcast")
    {
        int rank = Math.Max(a.Length, b.Length);
        var result = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            int db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da != db && da != 1 && db != 1)
                throw new ShapeMismatchException($"{op}: shapes {Format(a)} and {Format(b)} cannot be broadcast together (dimension {i}: {da} vs {db}).");
            result[i] = da == 1 ? db : da;
        }
        return result;
    }

    public static bool SameShape(ReadOnlySpan<int> a, ReadOnlySpan<int> b) => a.SequenceEqual(b);

    /// <summary>
    /// Strides that view a tensor of shape <paramref name="shape"/>/<paramref name="strides"/> with a new shape
    /// without copying, or null when the memory layout does not allow it (then the data must be copied).
    /// Old dims are grouped into runs that are contiguous among themselves; each run must be covered
    /// exactly by consecutive new dims, which then get strides inside that run.
    /// </summary>
    public static int[]? ViewStrides(ReadOnlySpan<int> shape, ReadOnlySpan<int> strides, ReadOnlySpan<int> newShape)
    {
        if (IsContiguous(shape, strides)) return ContiguousStrides(newShape);
        var result = new int[newShape.Length];
        int newDim = newShape.Length - 1;
        long runElements = 1, coveredElements = 1;
        int runBaseStride = strides[^1];
        for (int oldDim = shape.Length - 1; oldDim >= 0; oldDim--)
        {
            runElements *= shape[oldDim];
            bool runEnds = oldDim == 0 ||
                (shape[oldDim - 1] != 1 && strides[oldDim - 1] != runElements * runBaseStride);
            if (!runEnds) continue;
            while (newDim >= 0 && (coveredElements < runElements || newShape[newDim] == 1))
            {
                result[newDim] = (int)(coveredElements * runBaseStride);
                coveredElements *= newShape[newDim];
                newDim--;
            }
            if (coveredElements != runElements) return null;
            if (oldDim > 0)
            {
                runBaseStride = strides[oldDim - 1];
                runElements = 1;
                coveredElements = 1;
            }
        }
        return newDim == -1 ? result : null;
    }

    /// <summary>(product of the dims before, size of, product of the dims after) <paramref name="axis"/>: the shape
    /// viewed as [outer, len, inner] for kernels that work along one axis. A scalar is (1, 1, 1).</summary>
    public static (int Outer, int Len, int Inner) SplitAxis(ReadOnlySpan<int> shape, int axis)
    {
        if (shape.Length == 0) return (1, 1, 1);
        int outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= shape[i];
        for (int i = axis + 1; i < shape.Length; i++) inner *= shape[i];
        return (outer, shape[axis], inner);
    }
}
