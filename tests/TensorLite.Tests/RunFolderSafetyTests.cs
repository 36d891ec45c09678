using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TensorLite.Cli;
using TensorLite.IO;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>Helpers shared by the run-folder safety tests: tiny runs and a forger that rewrites a checkpoint's
/// checksums the way a careful attacker (or a buggy tool) would.</summary>
internal static class RunFolders
{
    public static TrainingOptions Tiny(int steps = 2) => new()
    {
        Model = "tiny", Seq = 16, Batch = 2, GradAccum = 1, Steps = steps, Warmup = 1, EvalEvery = 2, EvalBatches = 1,
        CheckpointEvery = 1, KeepCheckpoints = 1, LogEvery = 1, SyntheticBytes = 20_000, LearningRate = 3e-3f,
    };

    /// <summary>Recomputes the file checksums and the state checksum of a checkpoint after its files were edited.</summary>
    public static void Forge(string checkpointDir, Action<JsonObject>? editState = null)
    {
        string statePath = Path.Combine(checkpointDir, Checkpoints.StateFile);
        var node = JsonNode.Parse(File.ReadAllText(statePath))!.AsObject();
        var sums = new JsonObject();
        foreach (var f in Checkpoints.Files)
            sums[f] = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(checkpointDir, f))));
        node["Checksums"] = sums;
        editState?.Invoke(node);
        node["StateChecksum"] = null;
        var state = JsonSerializer.Deserialize<TrainingState>(node.ToJsonString())!;
        node["StateChecksum"] = state.ComputeStateChecksum();
        File.WriteAllText(statePath, node.ToJsonString());
    }

    /// <summary>Runs <paramref name="body"/>, failing the test if it takes longer than a generous bound (a hang).</summary>
    public static T WithinSeconds<T>(int seconds, Func<T> body)
    {
        var task = Task.Run(body);
        if (!task.Wait(TimeSpan.FromSeconds(seconds))) throw new TimeoutException($"hung for more than {seconds} s");
        return task.Result;
    }

    public static Exception ErrorOf(Action body) =>
        WithinSeconds(60, () => { try { body(); } catch (Exception e) { return e is AggregateException a ? a.InnerException! : e; } return null!; })
        ?? throw new Xunit.Sdk.XunitException("expected an error, but the call succeeded");

    public static void Mkfifo(string path)
    {
        using var p = Process.Start(new ProcessStartInfo("mkfifo", path) { UseShellExecute = false })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }
}

/// <summary>One test per defect of issue 15 (each failed before the fix), through the library.</summary>
public sealed class RunFolderSafetyTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-safe-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string FinishedRun(string name, TrainingOptions? options = null)
    {
        string dir = Path.Combine(_root, name);
        Trainer.Create(options ?? RunFolders.Tiny(), dir).Run();
        return dir;
    }

    private static float[][] Weights(Trainer t) => t.Model.Parameters().Select(p => p.ToArray()).ToArray();

    // 1
    [Fact]
    public void TornLastMetricsLine_IsDroppedOnResume_KeepingEveryWholeRecord()
    {
        string dir = FinishedRun("torn");
        string metrics = Path.Combine(dir, MetricsLog.FileName);
        var whole = File.ReadAllLines(metrics);
        File.AppendAllText(metrics, "{\"step\": 21, \"loss\": 3.");
        Assert.Equal(whole.Length, MetricsLog.Read(metrics, out int skipped).Count);
        Assert.Equal(1, skipped);
        var resumed = Trainer.Resume(dir, steps: 3);
        resumed.Run();
        var lines = File.ReadAllLines(metrics);
        Assert.Equal(3, lines.Length);
        Assert.Equal(whole, lines[..2]);
        Assert.All(lines, l => JsonDocument.Parse(l).Dispose());
    }

    // 2
    [Fact]
    public void SecondWriter_IsRefusedNamingTheHolder_UntilTheFirstIsDone()
    {
        string dir = FinishedRun("locked");
        var first = Trainer.Resume(dir, steps: 3);
        var e = Assert.Throws<RunFolderInUseException>(() => Trainer.Resume(dir, steps: 3));
        Assert.Contains($"process {Environment.ProcessId}", e.Message);
        Assert.Contains("already holds a run", Assert.ThrowsAny<TensorLiteException>(() => Trainer.Create(RunFolders.Tiny(), dir)).Message);
        first.Run(); // releases the lock when it ends
        Trainer.Resume(dir, steps: 4).Dispose();
    }

    // 3
    [Fact]
    public void DivergedStep_IsNeverKeptAsAGoodCheckpoint()
    {
        string dir = Path.Combine(_root, "diverged");
        var trainer = Trainer.Create(RunFolders.Tiny(steps: 3) with { LearningRate = 1e38f, Warmup = 0, ClipNorm = 0 }, dir);
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Run());
        Assert.Contains("no checkpoint was written yet", e.Message);
        Assert.Null(Checkpoints.Latest(dir));
        Assert.Empty(Directory.GetDirectories(Checkpoints.Folder(dir)));
    }

    // 3
    [Fact]
    public void NonFiniteWeights_AreRefusedByEvalAndResume_EvenWithMatchingChecksums()
    {
        string dir = FinishedRun("nanweights");
        string ckpt = Checkpoints.Latest(dir)!;
        string model = Path.Combine(ckpt, Checkpoints.ModelFile);
        var bytes = File.ReadAllBytes(model);
        BitConverter.GetBytes(float.NaN).CopyTo(bytes, bytes.Length - 4);
        File.WriteAllBytes(model, bytes);
        RunFolders.Forge(ckpt);
        Assert.Contains("non-finite weights", Assert.Throws<TensorLiteException>(() => Trainer.Open(dir)).Message);
        Assert.Contains("non-finite weights", Assert.Throws<TensorLiteException>(() => Trainer.Resume(dir, steps: 3)).Message);
    }

    // 4
    [Fact]
    public void HostileRunFolderContents_GiveOneSentence_NotACrash()
    {
        string dir = FinishedRun("hostile");
        string trainJson = Path.Combine(dir, "train.json");
        string original = File.ReadAllText(trainJson);
        File.WriteAllText(trainJson, original.Replace("\"Data\": []", "\"Data\": null"));
        Assert.Contains("\"Data\"", Assert.Throws<TensorLiteException>(() => Trainer.Open(dir)).Message);
        File.WriteAllText(trainJson, original);

        string config = Path.Combine(dir, "config.json");
        string configText = File.ReadAllText(config);
        File.WriteAllText(config, configText.Replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1000000"));
        var e = RunFolders.ErrorOf(() => Trainer.Open(dir));
        Assert.IsType<TensorLiteException>(e);
        Assert.Contains("1000000 layers", e.Message);
        e = RunFolders.ErrorOf(() => Trainer.Resume(dir, steps: 3));
        Assert.IsType<TensorLiteException>(e);
        File.WriteAllText(config, configText);

        string st = Path.Combine(_root, "badutf8.safetensors");
        var header = Encoding.UTF8.GetBytes("{\"a\u00e9\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        int at = Array.IndexOf(header, (byte)0xC3);
        header[at] = 0xFF; // invalid UTF-8 inside a tensor name
        File.WriteAllBytes(st, [.. BitConverter.GetBytes((long)header.Length), .. header, 0, 0, 0, 0]);
        Assert.Contains("UTF-8", Assert.Throws<TensorLiteException>(() => SafeTensors.Load(st)).Message);
    }

    // 4
    [Fact]
    public void UnboundedData_IsRefusedBeforeReading()
    {
        string never = Path.Combine(_root, "never");
        var e = RunFolders.ErrorOf(() => Trainer.Create(RunFolders.Tiny() with { Data = ["/dev/zero"] }, never));
        Assert.Contains("not a regular file", e.Message);
        string fifo = Path.Combine(_root, "fifo.txt");
        RunFolders.Mkfifo(fifo);
        Assert.Contains("not a regular file", RunFolders.ErrorOf(() => Trainer.Create(RunFolders.Tiny() with { Data = [fifo] }, never)).Message);
        Assert.Contains("is a directory", RunFolders.ErrorOf(() => Trainer.Create(RunFolders.Tiny() with { Data = [_root] }, never)).Message);
        string small = Path.Combine(_root, "small.txt");
        File.WriteAllText(small, "abc");
        Assert.Contains("too few tokens", RunFolders.ErrorOf(() => Trainer.Create(RunFolders.Tiny() with { Data = [small] }, never)).Message);
        Assert.False(Directory.Exists(never));
    }

    // 5
    [Fact]
    public void TheCheckpointFileSet_IsFixedByTheFormat_NotByTheManifest()
    {
        string dir = FinishedRun("manifest");
        string ckpt = Checkpoints.Latest(dir)!;
        string statePath = Path.Combine(ckpt, Checkpoints.StateFile);
        string state = File.ReadAllText(statePath);
        string model = Path.Combine(ckpt, Checkpoints.ModelFile);
        var modelBytes = File.ReadAllBytes(model);

        // Checksums deleted (and the state checksum forged to match): refused, so a flipped weight byte cannot pass.
        var flipped = (byte[])modelBytes.Clone();
        flipped[^3] ^= 0x40;
        File.WriteAllBytes(model, flipped);
        File.WriteAllText(statePath, state);
        RunFolders.Forge(ckpt, n => n.Remove("Checksums"));
        Assert.Contains("Checksums", RunFolders.ErrorOf(() => Trainer.Open(dir)).Message);
        File.WriteAllBytes(model, modelBytes);

        // A checksum entry naming a device: refused at once, nothing is read from it.
        RunFolders.Forge(ckpt, n => n["Checksums"]!.AsObject()["/dev/zero"] = "00");
        Assert.Contains("/dev/zero", RunFolders.ErrorOf(() => Trainer.Open(dir)).Message);
        File.WriteAllText(statePath, state);

        // A link to /dev/zero or a FIFO in place of the weights: refused without reading.
        File.Delete(model);
        File.CreateSymbolicLink(model, "/dev/zero");
        Assert.Contains("symbolic link", RunFolders.ErrorOf(() => Trainer.Open(dir)).Message);
        File.Delete(model);
        RunFolders.Mkfifo(model);
        Assert.Contains("not a regular file", RunFolders.ErrorOf(() => Trainer.Open(dir)).Message);
        File.Delete(model);
        File.WriteAllBytes(model, modelBytes);

        // latest naming another run's checkpoint by an absolute or relative path: refused.
        string other = FinishedRun("other");
        string latest = Path.Combine(Checkpoints.Folder(dir), "latest");
        foreach (var pointer in new[] { Checkpoints.Latest(other)!, "../../other/checkpoints/step-0000002", "step-0000002/../../../other/checkpoints/step-0000002" })
        {
            File.WriteAllText(latest, pointer);
            Assert.Contains("checkpoint name like step-", RunFolders.ErrorOf(() => Trainer.Open(dir)).Message);
        }
        File.WriteAllText(latest, "step-0000002");
        Assert.Equal(2, Trainer.Open(dir).StartStep);
    }

    // 6
    [Fact]
    public void MissingOrExtraOptimizerState_IsRefused()
    {
        string dir = FinishedRun("optstate");
        string ckpt = Checkpoints.Latest(dir)!;
        string path = Path.Combine(ckpt, Checkpoints.OptimizerFile);
        var original = File.ReadAllBytes(path);
        var meta = SafeTensors.ReadHeader(path).Metadata.ToDictionary();
        var state = SafeTensors.Load(path);

        SafeTensors.Save(path, state.Where(x => x.Key is not ("0.exp_avg" or "0.exp_avg_sq")).Select(x => (x.Key, x.Value)), meta);
        RunFolders.Forge(ckpt);
        Assert.Contains("'0.exp_avg'", Assert.Throws<TensorLiteException>(() => Trainer.Resume(dir, steps: 3)).Message);

        SafeTensors.Save(path, state.Select(x => (x.Key, x.Value)).Append(("99.extra", Tensor.Ones([2]))), meta);
        RunFolders.Forge(ckpt);
        Assert.Contains("'99.extra'", Assert.Throws<TensorLiteException>(() => Trainer.Open(dir)).Message);

        File.WriteAllBytes(path, original);
        RunFolders.Forge(ckpt);
        Assert.Equal(2, Trainer.Open(dir).StartStep);
    }

    // 6: the strict checks accept what every optimizer variant itself writes.
    [Theory]
    [InlineData("adamw", "8bit", false, "fp32")]
    [InlineData("adamw", "factored", true, "fp32")]
    [InlineData("galore", "fp32", true, "fp32")]
    [InlineData("frugal", "8bit", false, "fp32")]
    [InlineData("grass", "factored", false, "fp32")]
    [InlineData("osd", "fp32", false, "bf16")]
    [InlineData("adamw", "fp32", true, "bf16")]
    public void EveryOptimizerVariant_ResumesFromItsOwnCheckpoint(string optimizer, string states, bool perLayer, string weights)
    {
        var options = RunFolders.Tiny() with
        {
            Optimizer = optimizer, States = states, PerLayer = perLayer, Weights = weights, MasterWeights = weights == "bf16" && optimizer == "adamw",
            Rank = 8, UpdateGap = 2, GradAccum = 2,
        };
        string dir = FinishedRun($"{optimizer}-{states}-{perLayer}-{weights}", options);
        var resumed = Trainer.Resume(dir, steps: 3);
        Assert.Equal(2, resumed.StartStep);
        resumed.Run();
        Assert.Equal(3, Trainer.Open(dir).StartStep);
    }

    // 7
    [Fact]
    public void LeftoversOfInterruptedWrites_AreRemovedAtTheNextStart()
    {
        string dir = FinishedRun("leftovers");
        string root = Checkpoints.Folder(dir);
        string tmp = Path.Combine(root, ".tmp-step-0000003-0123456789abcdef");
        Directory.CreateDirectory(tmp);
        File.WriteAllBytes(Path.Combine(tmp, Checkpoints.ModelFile), new byte[1000]);
        File.WriteAllText(Path.Combine(root, ".latest.1234.abcd.tmp"), "step-0000003");
        File.WriteAllText(Path.Combine(dir, ".train.json.1234.abcd.tmp"), "{");
        Trainer.Open(dir); // a reader leaves them alone
        Assert.True(Directory.Exists(tmp));
        Trainer.Resume(dir, steps: 2).Dispose();
        Assert.False(Directory.Exists(tmp));
        Assert.Empty(Directory.GetFiles(root, ".*.tmp"));
        Assert.Empty(Directory.GetFiles(dir, ".*.tmp"));
    }

    // 9
    [Theory]
    [InlineData(-5)]
    [InlineData(1_000_000_000_000_000L)]
    [InlineData(1)]
    public void StateStepOutOfRangeOrNotTheFolders_IsRefused(long step)
    {
        string dir = FinishedRun($"step{step}");
        RunFolders.Forge(Checkpoints.Latest(dir)!, n => n["Step"] = step);
        var e = RunFolders.ErrorOf(() => Trainer.Open(dir));
        Assert.IsType<TensorLiteException>(e);
        Assert.Contains("Step", e.Message);
    }

    // Killed before its first checkpoint: the run starts over instead of being stuck (neither new nor resumable).
    [Fact]
    public void RunWithoutACheckpoint_ResumesFromTheStart_BitForBit()
    {
        string straight = FinishedRun("straight", RunFolders.Tiny(steps: 3));
        string dir = Path.Combine(_root, "early");
        var trainer = Trainer.Create(RunFolders.Tiny(steps: 3) with { CheckpointEvery = 100 }, dir);
        using (var stop = new CancellationTokenSource())
        {
            trainer.Progress += p => { if (p.Step == 2) stop.Cancel(); };
            trainer.Run(stop.Token);
        }
        Assert.Null(Checkpoints.Latest(dir));
        var resumed = Trainer.Resume(dir);
        Assert.Equal(0, resumed.StartStep);
        resumed.Run();
        var expected = Weights(Trainer.Open(straight));
        var actual = Weights(resumed);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i]);
    }
}

/// <summary>Defects 8 and 9 and the CLI side of 1 and 4: every bad flag is one "error:" line, exit code 2, with nothing
/// written. Console redirection is process-wide, so these run in the serial collection.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class RunFolderCliSafetyTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-safecli-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    internal static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var err = new StringWriter();
        var output = new StringWriter();
        var originalErr = Console.Error;
        var originalOut = Console.Out;
        Console.SetError(err);
        Console.SetOut(output);
        try
        {
            return (TensorLiteCli.Run(args), output.ToString(), err.ToString());
        }
        finally
        {
            Console.SetError(originalErr);
            Console.SetOut(originalOut);
        }
    }

    private static void AssertOneErrorLine(string stderr, string expected)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
    }

    private static readonly string[] TinyRun = ["--model", "tiny", "--seq", "16", "--batch", "2", "--warmup", "1", "--eval-every", "2",
        "--eval-batches", "1", "--checkpoint-every", "1", "--log-every", "1", "--synthetic-bytes", "20000"];

    [Fact]
    public void BadFlags_AreRefusedNamingTheFlag_BeforeAnythingIsWritten()
    {
        string never = Path.Combine(_root, "never");
        string small = Path.Combine(_root, "small.txt");
        File.WriteAllText(small, "abc");
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["train", "--lr", "Infinity"], "--lr"),
            (["train", "--lr", "NaN"], "--lr"),
            (["train", "--beta1", "nan"], "--beta1"),
            (["train", "--clip", "nan"], "--clip"),
            (["train", "--weight-decay", "-Infinity"], "--weight-decay"),
            (["train", "--min-lr-ratio", "nan"], "--min-lr-ratio"),
            (["train", "--density", "nan", "--optimizer", "frugal"], "--density"),
            (["train", "--optimizer", "galore", "--rank", "100000"], "--rank"),
            (["train", "--synthetic-bytes", "2147483647"], "--synthetic-bytes"),
            (["train", "--batch", "1000000000"], "--batch"),
            (["train", "--steps", "100000000"], "--steps"),
            (["train", "--data", _root], "is a directory"),
            (["train", "--data", "/dev/zero"], "not a regular file"),
            (["train", "--data", small], "too few tokens"),
        })
        {
            var (code, _, stderr) = Run([.. args, .. TinyRun, "--out", never]);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}, {stderr}");
            AssertOneErrorLine(stderr, expected);
            Assert.False(Directory.Exists(never), string.Join(' ', args));
        }
    }

    [Fact]
    public void RunFolderCommands_GiveOneLineErrors_AndTolerateATornMetricsLine()
    {
        string dir = Path.Combine(_root, "run");
        Assert.Equal(0, Run(["train", .. TinyRun, "--steps", "2", "--out", dir]).Code);
        // 9: resuming a finished run is refused, not reported as "validation loss NaN".
        var (code, _, stderr) = Run("train", "--resume", dir);
        Assert.Equal(2, code);
        AssertOneErrorLine(stderr, "already complete");
        // generate refuses a non-finite temperature.
        (code, _, stderr) = Run("generate", "--run", dir, "--temperature", "nan");
        Assert.Equal(2, code);
        AssertOneErrorLine(stderr, "--temperature");
        // 1: a torn last line: plot draws, resume repairs and continues.
        File.AppendAllText(Path.Combine(dir, MetricsLog.FileName), "{\"step\": 21, \"loss\": 3.");
        (code, _, stderr) = Run("plot", dir, "--out", Path.Combine(_root, "plot.png"));
        Assert.True(code == 0, stderr);
        (code, _, stderr) = Run("train", "--resume", dir, "--steps", "3");
        Assert.True(code == 0, stderr);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, MetricsLog.FileName)).Length);
        (code, var stdout, stderr) = Run("eval", "--run", dir, "--batches", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("step 3", stdout);
        // 4: invalid UTF-8 in the weights' header is one line, not a crash.
        string model = Path.Combine(Checkpoints.Latest(dir)!, Checkpoints.ModelFile);
        var bytes = File.ReadAllBytes(model);
        bytes[12] = 0xFF;
        File.WriteAllBytes(model, bytes);
        RunFolders.Forge(Checkpoints.Latest(dir)!);
        (code, _, stderr) = Run("eval", "--run", dir);
        Assert.Equal(2, code);
        AssertOneErrorLine(stderr, "UTF-8");
    }
}
