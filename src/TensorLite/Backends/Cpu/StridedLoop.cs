namespace TensorLite.Backends.Cpu;

/// <summary>
/// Iterates over the rows of up to three equally shaped strided views. Dimensions that are laid out
/// contiguously for every operand are merged first, so a contiguous tensor is a single long row and
/// the row body can use vectorized primitives.
/// </summary>
internal sealed class StridedLoop
{
    private readonly int[] _shape;       // merged shape; the last dim is the row
    private readonly int[][] _strides;   // per operand, merged

    public StridedLoop(ReadOnlySpan<int> shape, params int[][] strides)
    {
        var dims = new List<int>();
        var merged = strides.Select(_ => new List<int>()).ToArray();
        for (int d = 0; d < shape.Length; d++)
        {
            if (shape[d] == 1) continue;
            if (dims.Count > 0 && CanMerge(merged, strides, dims.Count - 1, d, shape[d]))
            {
                dims[^1] *= shape[d];
                for (int o = 0; o < strides.Length; o++) merged[o][^1] = strides[o][d];
                continue;
            }
            dims.Add(shape[d]);
            for (int o = 0; o < strides.Length; o++) merged[o].Add(strides[o][d]);
        }
        if (dims.Count == 0)
        {
            dims.Add(ShapeMath.Numel(shape) == 0 ? 0 : 1);
            foreach (var m in merged) m.Add(1);
        }
        _shape = dims.ToArray();
        _strides = merged.Select(m => m.ToArray()).ToArray();

        static bool CanMerge(List<int>[] merged, int[][] strides, int prevMergedDim, int d, int size)
        {
            for (int o = 0; o < strides.Length; o++)
                if (merged[o][prevMergedDim] != strides[o][d] * size) return false;
            return true;
        }
    }

    public int RowLength => _shape[^1];
    public int RowCount
    {
        get
        {
            int n = 1;
            for (int i = 0; i < _shape.Length - 1; i++) n *= _shape[i];
            return n;
        }
    }

    public int RowStride(int operand) => _strides[operand][^1];

    /// <summary>Offset (in elements, relative to the view's own offset) of a row's first element.</summary>
    public int RowOffset(int operand, int row)
    {
        int offset = 0;
        var strides = _strides[operand];
        for (int d = _shape.Length - 2; d >= 0; d--)
        {
            int idx = row % _shape[d];
            row /= _shape[d];
            offset += idx * strides[d];
        }
        return offset;
    }
}
