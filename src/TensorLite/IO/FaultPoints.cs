namespace TensorLite.IO;

/// <summary>
/// Named points inside the run folder's writes (checkpoint files, the <c>latest</c> pointer, metrics lines) where
/// crash-consistency tests make a process die or run out of disk space. Inert unless a test sets <see cref="Hook"/>
/// (in process) or the environment variable <c>TENSORLITE_FAULT</c> (a child process) to <c>POINT:N:ACTION</c>:
/// the N-th time POINT is reached the process kills itself with SIGKILL (ACTION <c>kill</c>) or the write fails as a
/// full disk does (ACTION <c>enospc</c>: an <see cref="IOException"/> "No space left on device", errno 28).
/// </summary>
internal static class FaultPoints
{
    /// <summary>Before each checkpoint file is written: "checkpoint.model", "checkpoint.optimizer", "checkpoint.state";
    /// after the folder is renamed into place, before <c>latest</c> moves: "checkpoint.commit"; after <c>latest</c> moved,
    /// before old checkpoints are pruned: "checkpoint.prune"; in the middle of a metrics line: "metrics.line"; in a data-parallel run, before rank R sums the gradients of a step
    /// with the others: "allreduce.rankR".</summary>
    public static readonly string[] Names = ["checkpoint.model", "checkpoint.optimizer", "checkpoint.state", "checkpoint.commit", "checkpoint.prune", "metrics.line", "allreduce.rank0", "allreduce.rank1"];

    /// <summary>Test hook called at every point (in-process tests).</summary>
    public static Action<string>? Hook { get; set; }

    /// <summary>errno ENOSPC, the HResult .NET gives the IOException of a write to a full disk on Linux.</summary>
    public const int NoSpaceHResult = 28;

    private static readonly (string Point, int Count, string Action)? FromEnvironment = Parse(Environment.GetEnvironmentVariable("TENSORLITE_FAULT"));
    private static int _hits;

    private static (string, int, string)? Parse(string? spec)
    {
        if (string.IsNullOrEmpty(spec)) return null;
        var parts = spec.Split(':');
        return parts.Length == 3 && int.TryParse(parts[1], out int n) ? (parts[0], n, parts[2]) : null;
    }

    public static void Hit(string point)
    {
        Hook?.Invoke(point);
        if (FromEnvironment is not var (name, count, action) || name != point) return;
        if (Interlocked.Increment(ref _hits) != count) return;
        if (action == "kill")
        {
            System.Diagnostics.Process.GetCurrentProcess().Kill();
            Thread.Sleep(Timeout.Infinite);
        }
        if (action == "enospc") throw NoSpace(point);
    }

    /// <summary>The exception a write to a full disk raises (for tests that simulate one).</summary>
    public static IOException NoSpace(string where) => new($"No space left on device : '{where}'", NoSpaceHResult);
}
