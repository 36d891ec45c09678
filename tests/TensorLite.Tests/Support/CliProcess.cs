using System.Diagnostics;

namespace TensorLite.Tests;

/// <summary>Runs the `tensorlite` command as a child process (`dotnet TensorLite.Cli.dll ...`), for tests that kill it or
/// run two at once.</summary>
internal static class CliProcess
{
    private static string Dll => Path.Combine(AppContext.BaseDirectory, "TensorLite.Cli.dll");

    private static string Host => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h) ? h : "dotnet";

    public static Process Start(IEnumerable<string> args, string? fault = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(Host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Dll);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["TENSORLITE_FAULT"] = fault ?? "";
        info.Environment["DOTNET_TieredPGO"] = "0"; // fewer background JIT threads on a small CI machine
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) info.Environment[name] = value;
        return Process.Start(info)!;
    }

    /// <summary>Waits for a started process (at most two minutes) and returns its exit code and the text of a stream
    /// being read.</summary>
    public static (int Code, string Text) Finish(Process p, Task<string> stream)
    {
        if (!p.WaitForExit(120_000)) throw new TimeoutException("tensorlite did not finish within 120 s.");
        p.WaitForExit();
        return (p.ExitCode, stream.Result);
    }

    /// <summary>Runs to the end (at most <paramref name="timeoutSeconds"/>; a hang fails the test) and returns the exit
    /// code (137 when killed by SIGKILL), stdout and stderr.</summary>
    public static (int Code, string Stdout, string Stderr) Run(IEnumerable<string> args, string? fault = null, int timeoutSeconds = 120,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        using var p = Start(args, fault, environment);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"tensorlite {string.Join(' ', args)} did not finish within {timeoutSeconds} s.");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
