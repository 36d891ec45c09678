using System.Diagnostics;

namespace TensorLite.Cli;

/// <summary>`train --nproc N`: runs the same command line as N ranks under Open MPI's `mpirun` on this machine.</summary>
public static class MpiLauncher
{
    public static int Relaunch(int processes)
    {
        if (processes < 1) throw new ArgumentException($"--nproc must be positive, got {processes}.");
        string mpirun = FindOnPath("mpirun") ?? throw new TensorLiteException(
            "--nproc needs Open MPI's mpirun, which is not on PATH; on Debian or Ubuntu: apt-get install openmpi-bin.");
        var info = new ProcessStartInfo(mpirun) { UseShellExecute = false };
        foreach (var a in MpirunArguments(processes)) info.ArgumentList.Add(a);
        // This program again: the app host, or `dotnet` with the entry assembly.
        string self = Environment.ProcessPath!;
        info.ArgumentList.Add(self);
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") info.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        foreach (var a in WithoutNproc(Environment.GetCommandLineArgs().Skip(1))) info.ArgumentList.Add(a);
        using var job = Process.Start(info)!;
        job.WaitForExit();
        return job.ExitCode;
    }

    /// <summary>Options for a job on this machine: as root (containers) Open MPI needs --allow-run-as-root; more ranks
    /// than cores need --oversubscribe, and then no rank is bound to a core.</summary>
    public static IEnumerable<string> MpirunArguments(int processes)
    {
        yield return "-np";
        yield return processes.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (Environment.UserName == "root") yield return "--allow-run-as-root";
        if (processes > Environment.ProcessorCount)
        {
            yield return "--oversubscribe";
            yield return "--bind-to";
            yield return "none";
        }
    }

    private static IEnumerable<string> WithoutNproc(IEnumerable<string> args)
    {
        bool skipValue = false;
        foreach (var a in args)
        {
            if (skipValue) { skipValue = false; continue; }
            if (a == "--nproc") { skipValue = true; continue; }
            if (a.StartsWith("--nproc=", StringComparison.Ordinal)) continue;
            yield return a;
        }
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);
}
