using System.Diagnostics;
using System.Text.Json;
using TensorLite.Training;
using Xunit;
using Xunit.Abstractions;

namespace TensorLite.Tests;

/// <summary>An uninterrupted tiny run made once by the CLI, the reference the interrupted runs must match bit for bit.</summary>
public sealed class UninterruptedRun : IDisposable
{
    public static readonly string[] Args = ["--model", "tiny", "--seq", "16", "--batch", "2", "--steps", "8", "--warmup", "2", "--eval-every", "4",
        "--eval-batches", "1", "--checkpoint-every", "2", "--keep-checkpoints", "2", "--log-every", "1", "--synthetic-bytes", "20000"];

    public string Root { get; } = Directory.CreateTempSubdirectory("tl-crash-").FullName;
    public string Dir => Path.Combine(Root, "reference");

    public UninterruptedRun()
    {
        var (code, _, stderr) = CliProcess.Run(["train", .. Args, "--out", Dir]);
        Assert.True(code == 0, stderr);
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

/// <summary>
/// Crash consistency: the CLI runs as a child process and is killed with SIGKILL at chosen points inside checkpoint
/// and metrics writes (fault points) and at random moments, or hits a (simulated) full disk there; resuming then
/// finishes the run with exactly the uninterrupted run's weights, optimizer state, training state and metrics.
/// </summary>
public sealed class CrashConsistencyTests(UninterruptedRun reference, ITestOutputHelper output) : IClassFixture<UninterruptedRun>
{
    private const int Killed = 137; // 128 + SIGKILL

    private string NewDir(string name) => Path.Combine(reference.Root, name);

    private static (int Code, string Stderr) Train(string dir, bool resume, string? fault = null)
    {
        string[] args = resume ? ["train", "--resume", dir] : ["train", .. UninterruptedRun.Args, "--out", dir];
        var (code, _, stderr) = CliProcess.Run(args, fault);
        return (code, stderr);
    }

    /// <summary>The finished run equals the reference: the same final checkpoint bytes and the same metrics (everything
    /// but timings and memory readings), and nothing left over from the interruptions.</summary>
    private void AssertSameAsReference(string dir)
    {
        string expected = Checkpoints.Latest(reference.Dir)!, actual = Checkpoints.Latest(dir)!;
        Assert.Equal(Path.GetFileName(expected), Path.GetFileName(actual));
        foreach (var file in new[] { Checkpoints.ModelFile, Checkpoints.OptimizerFile, Checkpoints.StateFile })
            Assert.True(File.ReadAllBytes(Path.Combine(expected, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(actual, file))), $"{file} differs");
        Assert.Equal(Metrics(reference.Dir), Metrics(dir));
        Assert.Empty(Directory.GetDirectories(Checkpoints.Folder(dir), ".tmp-*"));
        Assert.Empty(Directory.GetFiles(Checkpoints.Folder(dir), ".*.tmp"));
        Assert.Empty(Directory.GetFiles(dir, ".*.tmp"));
    }

    private static string[] Metrics(string dir) => File.ReadAllLines(Path.Combine(dir, MetricsLog.FileName)).Select(line =>
    {
        var r = JsonDocument.Parse(line).RootElement;
        return string.Join(",", new[] { "step", "loss", "val_loss", "lr", "grad_norm", "tokens" }.Select(k => r.GetProperty(k).GetRawText()));
    }).ToArray();

    [Fact]
    public void KilledInsideCheckpointAndMetricsWrites_ResumesToTheUninterruptedRun()
    {
        string dir = NewDir("killed");
        // Each process dies at its fault point; the next one resumes from whatever the last one left behind.
        var faults = new[]
        {
            "checkpoint.model:2:kill",     // step 4's checkpoint: nothing of it written yet
            "metrics.line:3:kill",         // half of a metrics line on disk (a torn last line)
            "checkpoint.commit:1:kill",    // step 6's folder in place, latest not yet moved
            "checkpoint.prune:1:kill",     // latest moved, the old checkpoint not yet pruned
            "checkpoint.optimizer:1:kill", // a half-made temporary checkpoint folder
            "checkpoint.state:1:kill",
        };
        bool resume = false;
        foreach (var fault in faults)
        {
            var (code, stderr) = Train(dir, resume, fault);
            Assert.True(code == Killed, $"{fault}: exit {code}: {stderr}");
            resume = true;
        }
        Assert.NotEmpty(Directory.GetDirectories(Checkpoints.Folder(dir), ".tmp-*")); // the kills did leave debris
        var (last, err) = Train(dir, resume: true);
        Assert.True(last == 0, err);
        AssertSameAsReference(dir);
    }

    [Fact]
    public void KilledAtRandomMoments_ResumesToTheUninterruptedRun()
    {
        var rng = new Random(20261202);
        string dir = NewDir("random");
        bool started = false;
        int kills = 0;
        string metrics = Path.Combine(dir, MetricsLog.FileName);
        int Lines() { try { return File.ReadAllText(metrics).Count(c => c == '\n'); } catch (IOException) { return 0; } }
        for (int attempt = 0; attempt < 4; attempt++)
        {
            string[] args = started ? ["train", "--resume", dir] : ["train", .. UninterruptedRun.Args, "--out", dir];
            using var p = CliProcess.Start(args);
            var stderr = p.StandardError.ReadToEndAsync();
            var stdout = p.StandardOutput.ReadToEndAsync();
            // A random moment: once the run has logged a random number of further steps, after a random extra delay (a
            // step of this run takes a few milliseconds to tens of them, so kills land in steps, metrics and checkpoint writes).
            int target = Lines() + rng.Next(1, 4);
            var clock = Stopwatch.StartNew();
            while (!p.HasExited && Lines() < target && clock.Elapsed < TimeSpan.FromSeconds(90)) Thread.Sleep(2);
            Thread.Sleep(rng.Next(0, 40));
            if (!p.HasExited)
            {
                p.Kill(); // SIGKILL
                kills++;
            }
            var (exit, err) = CliProcess.Finish(p, stderr);
            started |= File.Exists(Path.Combine(dir, "train.json"));
            if (exit == 0 || err.Contains("already complete")) break;
        }
        output.WriteLine($"{kills} random kills");
        Assert.True(kills > 0);
        if (!File.Exists(Path.Combine(dir, "train.json")))
        {
            var (fresh, e1) = Train(dir, resume: false);
            Assert.True(fresh == 0, e1);
        }
        else
        {
            var (code, err) = Train(dir, resume: true);
            Assert.True(code == 0 || err.Contains("already complete"), err);
        }
        AssertSameAsReference(dir);
    }

    [Fact]
    public void FullDiskDuringMetricsAndCheckpointWrites_ReportsIt_AndResumesAfterSpaceIsFreed()
    {
        // Simulated: the fault point raises the IOException a full disk raises (errno 28, "No space left on device")
        // after half of a metrics line reached the file, or before a checkpoint file is written.
        string dir = NewDir("enospc");
        var (code, stderr) = Train(dir, resume: false, "metrics.line:3:enospc");
        Assert.Equal(2, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains("No space left on device", lines[0]);
        Assert.Contains("metrics.jsonl", lines[0]);
        Assert.False(File.ReadAllText(Path.Combine(dir, MetricsLog.FileName)).EndsWith('\n')); // the torn line is there

        (code, stderr) = Train(dir, resume: true, "checkpoint.optimizer:1:enospc");
        Assert.Equal(2, code);
        lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains("No space left on device", lines[0]);
        Assert.Contains("checkpoint step-", lines[0]);
        Assert.Empty(Directory.GetDirectories(Checkpoints.Folder(dir), ".tmp-*"));

        (code, stderr) = Train(dir, resume: true);
        Assert.True(code == 0, stderr);
        AssertSameAsReference(dir);
    }

    private static bool Shell(string file, params string[] args)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(file, args) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true })!;
            p.WaitForExit(30_000);
            return p.HasExited && p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    /// <summary>A real full disk where the machine allows mounting a small tmpfs (root on Linux; CI runners usually are
    /// not, and then this test only says so: the simulated one above covers the same paths).</summary>
    [Fact]
    public void RealFullDisk_OnASmallTmpfs_ReportsIt_AndResumesAfterSpaceIsFreed()
    {
        string mountPoint = NewDir("tmpfs");
        Directory.CreateDirectory(mountPoint);
        if (!OperatingSystem.IsLinux() || !Shell("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mountPoint))
        {
            output.WriteLine("could not mount a tmpfs here (not root?); the real full-disk case was not run");
            return;
        }
        try
        {
            // 3 MiB holds the first checkpoint (1.6 MiB) but not the second.
            string dir = Path.Combine(mountPoint, "run");
            var (code, stderr) = Train(dir, resume: false);
            Assert.Equal(2, code);
            var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.Contains("No space left on device", lines[0]);
            Assert.Empty(Directory.GetDirectories(Checkpoints.Folder(dir), ".tmp-*"));

            // Completely full: resuming fails with the same one line, and leaves the run resumable.
            var filler = Path.Combine(mountPoint, "filler");
            try
            {
                using var f = new FileStream(filler, FileMode.Create);
                var block = new byte[4096];
                while (true) f.Write(block);
            }
            catch (IOException) { /* full */ }
            (code, stderr) = Train(dir, resume: true);
            Assert.Equal(2, code);
            lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.Contains("No space left on device", lines[0]);

            File.Delete(filler);
            Assert.True(Shell("mount", "-o", "remount,size=32m", mountPoint));
            (code, stderr) = Train(dir, resume: true);
            Assert.True(code == 0, stderr);
            AssertSameAsReference(dir);
        }
        finally
        {
            Shell("umount", mountPoint);
        }
    }

    [Fact]
    public void SecondProcess_IsRefusedNamingTheFirst_AndAKilledHolderLeavesNoStaleLock()
    {
        string dir = NewDir("locked");
        string[] args = ["train", .. UninterruptedRun.Args.Select(a => a == "8" ? "5000" : a), "--out", dir];
        using var first = CliProcess.Start(args);
        _ = first.StandardOutput.ReadToEndAsync();
        _ = first.StandardError.ReadToEndAsync();
        var clock = Stopwatch.StartNew();
        while (!File.Exists(Path.Combine(dir, "train.json")) && clock.Elapsed < TimeSpan.FromSeconds(90)) Thread.Sleep(50);
        Assert.True(File.Exists(Path.Combine(dir, "train.json")));
        var (code, _, stderr) = CliProcess.Run(["train", "--resume", dir]);
        Assert.Equal(2, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains($"in use by process {first.Id}", lines[0]);

        first.Kill(); // SIGKILL: the OS drops its lock
        first.WaitForExit();
        (code, _, stderr) = CliProcess.Run(["train", "--resume", dir, "--steps", "1"]);
        Assert.DoesNotContain("in use", stderr);
        Assert.True(code == 0 || stderr.Contains("already complete"), stderr);
    }
}
