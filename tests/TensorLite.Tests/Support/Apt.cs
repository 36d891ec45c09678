using System.Diagnostics;

namespace TensorLite.Tests.Support;

/// <summary>Debian's package tool for the test fixtures that install what a fresh machine lacks (Open MPI, NVIDIA's
/// assembler). One apt command at a time in this process: test classes run in parallel, and apt refuses to run while
/// another apt holds its lock.</summary>
internal static class Apt
{
    public static readonly object Gate = new();

    /// <summary>Runs <paramref name="command"/> (a shell command line that calls apt) under <see cref="Gate"/>.</summary>
    public static void Run(string command, int timeoutSeconds = 600)
    {
        lock (Gate)
        {
            var info = new ProcessStartInfo("bash", ["-c", command]) { RedirectStandardOutput = true, RedirectStandardError = true };
            info.Environment["DEBIAN_FRONTEND"] = "noninteractive";
            using var p = Process.Start(info)!;
            var err = p.StandardError.ReadToEndAsync();
            p.StandardOutput.ReadToEnd();
            if (!p.WaitForExit(timeoutSeconds * 1000))
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"'{command}' took more than {timeoutSeconds} s.");
            }
            if (p.ExitCode != 0) throw new InvalidOperationException($"'{command}' failed ({p.ExitCode}): {err.Result}");
        }
    }

    /// <summary>Installs Debian packages (the lists are updated first; a dpkg lock held by another program is waited for).</summary>
    public static void Install(params string[] packages) =>
        Run($"apt-get update -qq && apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 {string.Join(' ', packages)}");
}
