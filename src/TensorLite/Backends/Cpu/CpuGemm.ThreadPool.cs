using System.Runtime.InteropServices;

namespace TensorLite.Backends.Cpu;

// The per-thread packing buffers and the persistent helper threads that share one GEMM call's tickets.
public static unsafe partial class CpuGemm
{
    /// <summary>Per-thread packing buffers (64-byte aligned native memory, grown on demand, reused).</summary>
    sealed class Workspace
    {
        [ThreadStatic] static Workspace? t_current;
        public static Workspace Current => t_current ??= new Workspace();

        float* _a, _b;
        long _aCap, _bCap;
        public readonly float* Tile;

        public Workspace()
        {
            Tile = (float*)NativeMemory.AlignedAlloc((nuint)(16 * 64 * sizeof(float)), 64);
        }

        public float* EnsureA(long floats) => Ensure(ref _a, ref _aCap, floats);
        public float* EnsureB(long floats) => Ensure(ref _b, ref _bCap, floats);

        static float* Ensure(ref float* p, ref long cap, long floats)
        {
            if (floats > cap)
            {
                if (p != null) NativeMemory.AlignedFree(p);
                p = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
                cap = floats;
            }
            return p;
        }

        ~Workspace()
        {
            if (_a != null) NativeMemory.AlignedFree(_a);
            if (_b != null) NativeMemory.AlignedFree(_b);
            NativeMemory.AlignedFree(Tile);
        }
    }

    /// <summary>
    /// Persistent helper threads (MaxThreads − 1 of them; the caller always works too). One GEMM at
    /// a time holds <see cref="Gate"/>; a concurrent caller that cannot take it runs single-threaded.
    /// Helpers are optional: the caller opens the job, wakes them and starts working at once; a
    /// helper that wakes while the job is open takes tickets like the caller, one that wakes after
    /// the caller closed it does nothing. The caller closes the job when no tickets are left and then
    /// waits only for helpers that actually joined. No allocation per call: the job lives in statics.
    /// </summary>
    static class Pool
    {
        public static readonly object Gate = new();
        static Worker[] s_workers = [];
        static int s_open;    // 1 while helpers may join the current job
        static int s_active;  // helpers inside Execute (or deciding whether to enter)
        static Exception? s_error;

        // Current job (written by the caller under Gate before s_open is set).
        public enum Mode { SplitM, SplitN, Batched }
        static Mode s_mode;
        static Args s_args;
        static float* s_bBuf;
        static long s_bHalf;
        static int s_chunk;
        static int[] s_tickets = new int[64 * TicketStride];
        static int s_batch;
        static long s_strideA, s_strideB, s_strideC;

        sealed class Worker
        {
            public readonly ManualResetEventSlim Go = new(false, 1000);
            public readonly Workspace Ws = new();
            public readonly int Tid;
            public readonly Thread Thread;

            public Worker(int tid)
            {
                Tid = tid;
                Thread = new Thread(Loop) { IsBackground = true, Name = $"TensorLite.Gemm.{tid}" };
                Thread.Start();
            }

            void Loop()
            {
                while (true)
                {
                    Go.Wait();
                    Go.Reset();
                    Interlocked.Increment(ref s_active);
                    if (Volatile.Read(ref s_open) == 1)
                    {
                        if (Prof) Interlocked.Increment(ref ProfT[4]);
                        try { Execute(Ws); }
                        catch (Exception e) { s_error = e; }
                    }
                    Interlocked.Decrement(ref s_active);
                }
            }
        }

        static void EnsureWorkers(int threads)
        {
            if (s_workers.Length >= threads - 1) return;
            var w = new Worker[threads - 1];
            Array.Copy(s_workers, w, s_workers.Length);
            for (int i = s_workers.Length; i < w.Length; i++)
            {
                w[i] = new Worker(i + 1);
                try { w[i].Thread.Priority = s_helperPriority; } catch (ThreadStateException) { }
            }
            s_workers = w;
        }

        public static void Run(in Args g, int threads, Mode mode, Workspace callerWs)
        {
            s_args = g;
            s_mode = mode;
            int slots;
            if (mode == Mode.SplitM)
            {
                s_bBuf = callerWs.EnsureB(BBufferFloats(in g, out long half));
                s_bHalf = half;
                s_chunk = ChunkRowsFor(g.M, threads);
                slots = 4 * ((g.N + NcFor(g.K) - 1) / NcFor(g.K));
            }
            else
            {
                int np = (g.N + NR - 1) / NR;
                s_chunk = Math.Clamp((np + 4 * threads - 1) / (4 * threads), 1, 8); // panels per group
                slots = 1;
            }
            PrepareTickets(slots);
            Launch(threads, callerWs);
        }

        public static void RunBatched(in Args g, int batch, long strideA, long strideB, long strideC, int threads)
        {
            s_args = g;
            s_batch = batch;
            s_strideA = strideA; s_strideB = strideB; s_strideC = strideC;
            s_mode = Mode.Batched;
            PrepareTickets(1);
            Launch(threads, Workspace.Current);
        }

        static void PrepareTickets(int slots)
        {
            if (s_tickets.Length < slots * TicketStride) s_tickets = new int[slots * TicketStride];
            else Array.Clear(s_tickets, 0, slots * TicketStride);
        }

        static ThreadPriority s_helperPriority = ThreadPriority.Normal;

        static void Launch(int threads, Workspace callerWs)
        {
            EnsureWorkers(threads);
            // Helpers work on the caller's behalf: give them its priority (a caller running at raised
            // priority, e.g. under BenchmarkDotNet, would otherwise starve them on a busy machine).
            var prio = Thread.CurrentThread.Priority;
            if (prio != s_helperPriority)
            {
                try { foreach (var w in s_workers) w.Thread.Priority = prio; }
                catch (ThreadStateException) { }
                s_helperPriority = prio;
            }
            if (Prof) Interlocked.Increment(ref ProfT[5]);
            s_error = null;
            Interlocked.Exchange(ref s_open, 1);
            for (int t = 1; t < threads; t++) s_workers[t - 1].Go.Set();
            Exception? mine = null;
            try { Execute(callerWs); }
            catch (Exception e) { mine = e; }
            // No tickets left: close the job, then wait for helpers that joined to finish their items.
            Interlocked.Exchange(ref s_open, 0);
            var sw = new SpinWait();
            while (Volatile.Read(ref s_active) != 0) sw.SpinOnce(sleep1Threshold: -1);
            if (mine != null || s_error != null) throw new InvalidOperationException("GEMM worker failed.", mine ?? s_error);
        }

        static void Execute(Workspace ws)
        {
            switch (s_mode)
            {
                case Mode.SplitM:
                    BlockedSplitM(in s_args, s_bBuf, s_bHalf, ws.EnsureA(ABufferFloats(MC)), ws.Tile, s_tickets, s_chunk);
                    break;
                case Mode.SplitN:
                    BlockedSplitN(in s_args, ws.EnsureB((long)KC * NR * s_chunk),
                        ws.EnsureA(ABufferFloats(s_args.M)), ws.Tile, s_tickets, s_chunk);
                    break;
                default:
                    for (int i; (i = Interlocked.Increment(ref s_tickets[0]) - 1) < s_batch;)
                    {
                        var gi = s_args;
                        gi.A = Advance(gi.A, gi.AType, i * s_strideA);
                        gi.B = Advance(gi.B, gi.BType, i * s_strideB);
                        gi.C += i * s_strideC;
                        CpuGemm.Run(in gi, ws, allowParallel: false);
                    }
                    break;
            }
        }
    }
}
