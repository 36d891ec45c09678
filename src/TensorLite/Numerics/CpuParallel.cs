using System.Runtime.ExceptionServices;

namespace TensorLite.Numerics;

/// <summary>
/// Splits loops over the cores when the work is large enough to pay for the hand-off.
/// <para>The loop is cut into a few more chunks than there are threads, handed out by a ticket counter: the
/// calling thread starts on them at once, and persistent helper threads join when they wake. Nobody waits for a
/// helper that has not started, and a core that is busy with another program just takes fewer chunks (a static
/// split into one chunk per thread waits for the slowest thread, and on a shared machine that is often the one
/// that lost its core). Results never depend on the cut: every caller's body computes each item the same way
/// whatever range it is given, and reductions that combine partial results fix their own chunk count.</para>
/// </summary>
internal static class CpuParallel
{
    /// <summary>Below this many element-operations a loop runs on the calling thread.</summary>
    public const long MinParallelWork = 1 << 15;

    /// <summary>Chunks per thread when the work allows it (more evens out an uneven share of the cores).</summary>
    private const int ChunksPerThread = 4;

    public static int Threads => Environment.ProcessorCount;

    /// <summary>Runs body(start, end) over contiguous chunks of [0, count).</summary>
    public static void For(int count, long workPerItem, Action<int, int> body)
    {
        int threads = Threads;
        long work = count * Math.Max(workPerItem, 1);
        if (threads <= 1 || count < 2 || work < MinParallelWork)
        {
            body(0, count);
            return;
        }
        // One loop uses the helpers at a time; a loop started inside one (or from another thread meanwhile) runs
        // on its own thread, which is already one of the busy ones.
        if (Interlocked.CompareExchange(ref LoopPool.Busy, 1, 0) != 0)
        {
            body(0, count);
            return;
        }
        try
        {
            long byWork = Math.Max(threads, work / (MinParallelWork / 2));
            int chunks = (int)Math.Min(count, Math.Min((long)ChunksPerThread * threads, byWork));
            LoopPool.Run(count, chunks, body, threads);
        }
        finally
        {
            Volatile.Write(ref LoopPool.Busy, 0);
        }
    }

    /// <summary>
    /// Persistent helper threads (Threads − 1) that take chunks of the current loop by ticket. The caller opens the
    /// loop, wakes them and works; when the tickets are gone it closes the loop and waits only for helpers that
    /// joined it. The loop lives in statics owned by whoever set <see cref="Busy"/> (not a Monitor: a nested loop on
    /// the same thread must not re-enter).
    /// </summary>
    private static class LoopPool
    {
        public static int Busy;
        private static Helper[] s_helpers = [];
        private static int s_open, s_active, s_next;
        private static int s_count, s_chunks;
        private static Action<int, int>? s_body;
        private static ExceptionDispatchInfo? s_error;

        public static void Run(int count, int chunks, Action<int, int> body, int threads)
        {
            EnsureHelpers(threads - 1);
            s_count = count;
            s_chunks = chunks;
            s_body = body;
            s_error = null;
            s_next = 0;
            Interlocked.Exchange(ref s_open, 1);
            for (int i = 0; i < threads - 1; i++) s_helpers[i].Go.Set();
            TakeChunks();
            Interlocked.Exchange(ref s_open, 0);
            var spin = new SpinWait();
            while (Volatile.Read(ref s_active) != 0) spin.SpinOnce(sleep1Threshold: -1);
            s_body = null;
            s_error?.Throw();
        }

        private static void TakeChunks()
        {
            try
            {
                for (int c; (c = Interlocked.Increment(ref s_next) - 1) < s_chunks;)
                {
                    if (s_error != null) return;
                    s_body!((int)((long)s_count * c / s_chunks), (int)((long)s_count * (c + 1) / s_chunks));
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref s_error, ExceptionDispatchInfo.Capture(e), null);
            }
        }

        private static void EnsureHelpers(int helpers)
        {
            if (s_helpers.Length >= helpers) return;
            var h = new Helper[helpers];
            Array.Copy(s_helpers, h, s_helpers.Length);
            for (int i = s_helpers.Length; i < helpers; i++) h[i] = new Helper(i + 1);
            s_helpers = h;
        }

        private sealed class Helper
        {
            public readonly ManualResetEventSlim Go = new(false, 1000);

            public Helper(int id) => new Thread(Loop) { IsBackground = true, Name = $"TensorLite.Loop.{id}" }.Start();

            private void Loop()
            {
                while (true)
                {
                    Go.Wait();
                    Go.Reset();
                    Interlocked.Increment(ref s_active);
                    if (Volatile.Read(ref s_open) == 1) TakeChunks();
                    Interlocked.Decrement(ref s_active);
                }
            }
        }
    }
}
