using System.Numerics.Tensors;

namespace TensorLite.Backends.Cpu;

// Placeholder reference GEMM; replaced by the blocked, packed, Vector512 implementation.
public static unsafe class CpuGemm
{
    public static int MaxThreads { get; set; } = Environment.ProcessorCount;

    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        var row = new float[n];
        for (int i = 0; i < m; i++)
        {
            Array.Clear(row);
            for (int p = 0; p < k; p++)
            {
                float av = transA ? a[p * lda + i] : a[i * lda + p];
                if (!transB) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(b + p * ldb, n), av, row, row);
                else for (int j = 0; j < n; j++) row[j] += av * b[j * ldb + p];
            }
            var cRow = new Span<float>(c + i * ldc, n);
            for (int j = 0; j < n; j++) cRow[j] = alpha * row[j] + (beta == 0 ? 0 : beta * cRow[j]);
        }
    }

    public static void SgemmBatched(bool transA, bool transB, int batch, int m, int n, int k, float alpha, float* a, long strideA, int lda, float* b, long strideB, int ldb, float beta, float* c, long strideC, int ldc)
    {
        for (int i = 0; i < batch; i++)
            Sgemm(transA, transB, m, n, k, alpha, a + i * strideA, lda, b + i * strideB, ldb, beta, c + i * strideC, ldc);
    }
}
