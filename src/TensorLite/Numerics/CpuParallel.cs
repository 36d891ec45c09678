namespace TensorLite.Numerics;

/// <summary>Splits loops over the cores when the work is large enough to pay for the hand-off.</summary>
internal static class CpuParallel
{
    /// <summary>Below this many element-operations a loop runs on the calling thread.</summary>
    public const long MinParallelWork = 1 << 15;

    public static int Threads => Environment.ProcessorCount;

    /// <summary>Runs body(start, end) over contiguous chunks of [0, count).</summary>
    public static void For(int count, long workPerItem, Action<int, int> body)
    {
        int threads = Threads;
        if (threads <= 1 || count < 2 || count * workPerItem < MinParallelWork)
        {
            body(0, count);
            return;
        }
        int chunks = Math.Min(count, threads);
        Parallel.For(0, chunks, c =>
        {
            int start = (int)((long)count * c / chunks);
            int end = (int)((long)count * (c + 1) / chunks);
            body(start, end);
        });
    }
}
