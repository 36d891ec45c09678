namespace TensorLite.Numerics;

/// <summary>How a strided 2-D view maps onto a BLAS-style (transpose flag, leading dimension) operand.</summary>
internal static class MatrixLayout
{
    public static bool TryGet(int rows, int cols, int rowStride, int colStride, out bool transposed, out int leadingDim)
    {
        if (cols == 1 || colStride == 1)
        {
            transposed = false;
            leadingDim = rows == 1 ? Math.Max(1, cols) : rowStride;
            if (leadingDim >= cols) return true;
        }
        if (rows == 1 || rowStride == 1)
        {
            transposed = true;
            leadingDim = cols == 1 ? Math.Max(1, rows) : colStride;
            if (leadingDim >= rows) return true;
        }
        transposed = false;
        leadingDim = 0;
        return false;
    }
}
