using System.Text.Json;
using TensorLite.Optim.Offload;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The deferred offload schedule (<c>--offload-schedule deferred</c>, docs/offload.md): the updates of the
/// layers nearest the input land in the next forward, just before each layer runs, and the run's parameters, losses
/// and resumes are the serial schedule's bit for bit.</summary>
public sealed class OffloadDeferralTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-deferral-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Four steps of the tiny model (2 layers) with two micro-batches each; evaluation and checkpoints only at
    /// the end, so every step's deferred updates cross into the next step's forward.</summary>
    private static TrainingOptions Small(string optimizer, string offload, string schedule, bool perLayer = true) => new()
    {
        Model = "tiny", Seq = 16, Batch = 2, GradAccum = 2, Steps = 4, Warmup = 2, EvalEvery = 1000, EvalBatches = 1,
        CheckpointEvery = 1000, LogEvery = 1, SyntheticBytes = 20_000, LearningRate = 3e-3f, Optimizer = optimizer, Rank = 8,
        UpdateGap = 2, Offload = offload, OffloadSchedule = schedule, PerLayer = perLayer,
    };

    private static float[][] Weights(Trainer t) => t.Model.Parameters().Select(p => p.ToArray()).ToArray();

    private Trainer Train(TrainingOptions options, string name)
    {
        var trainer = Trainer.Create(options, Path.Combine(_root, name));
        trainer.Run();
        return trainer;
    }

    /// <summary>Every logged step's training loss and validation loss (null when none), in order.</summary>
    private List<(float Loss, float? Val)> Losses(string name) =>
        MetricsLog.Read(Path.Combine(_root, name, MetricsLog.FileName), out _)
            .Select(r => (r.GetProperty("loss").GetSingle(), r.GetProperty("val_loss").ValueKind == JsonValueKind.Null ? (float?)null : r.GetProperty("val_loss").GetSingle()))
            .ToList();

    [Theory]
    [InlineData("adamw", "dense", true)] // the embedding's fused update lands in the next forward
    [InlineData("galore", "host", true)]
    [InlineData("grass", "host", true)] // factored gradients
    [InlineData("galore", "host", false)] // one optimizer step after the whole backward
    public void DeferredSchedule_GivesTheSerialRunsParametersAndLosses_BitForBit(string optimizer, string offload, bool perLayer)
    {
        var serial = Train(Small(optimizer, offload, "serial", perLayer), "serial");
        var deferred = Train(Small(optimizer, offload, "deferred", perLayer), "deferred");
        Assert.Equal(Weights(serial), Weights(deferred));
        // Every forward (training and the final evaluation) read fully updated weights.
        Assert.Equal(Losses("serial"), Losses("deferred"));

        // The default defers a quarter of tiny's 2 layers, rounded up: the embedding (stage 0) and layer 0 (stage 1).
        var stages = deferred.Offload!.DeferredStages;
        Assert.Equal(0, stages["model.embed_tokens.weight"]);
        Assert.All(stages.Where(s => s.Key != "model.embed_tokens.weight"), s => Assert.StartsWith("model.layers.0.", s.Key));
        Assert.Equal(10, stages.Count); // the embedding and layer 0's 9 tensors
        Assert.Equal(0, deferred.Offload.DeferredCount); // the run ended with everything applied
        // A deferred host update can start in one step and end in the next: its time still counts as positive.
        Assert.All(MetricsLog.Read(Path.Combine(_root, "deferred", MetricsLog.FileName), out _), r => Assert.True(r.GetProperty("offload_host_s").GetDouble() >= 0));

        // The last step's timeline shows step 3's deferred updates landing in step 4's forward, before the backward
        // that produced step 4's own updates (which land again before the final evaluation).
        var timeline = OffloadTimeline.Read(Path.Combine(_root, "deferred"))!;
        double firstSend = timeline.Events.Where(e => e.Lane == OffloadLane.ToHost).Min(e => e.Start);
        var landedInForward = timeline.Events.Where(e => e.Lane == OffloadLane.DeferredApply && e.End <= firstSend).Select(e => e.Name);
        Assert.Equal(stages.Keys.Order(), landedInForward.Order());
        Assert.DoesNotContain(timeline.Events, e => e.Lane == OffloadLane.ToDeviceAndApply && stages.ContainsKey(e.Name));
    }

    [Fact]
    public void ACheckpointWithDeferredUpdatesPending_AppliesThemFirst_AndTheResumedRunIsExact()
    {
        var options = Small("galore", "host", "deferred") with { CheckpointEvery = 2, OffloadDeferLayers = 2 };
        var straight = Train(options, "straight");
        var serial = Train(options with { OffloadSchedule = "serial", OffloadDeferLayers = null }, "serial");
        var dir = Path.Combine(_root, "interrupted");
        var first = Trainer.Create(options, dir);
        using var stop = new CancellationTokenSource();
        first.Progress += p => { if (p.Step == 2) stop.Cancel(); };
        first.Run(stop.Token);
        // The checkpoint of step 2 holds step 2's updates although they were still deferred when the step ended.
        var atCheckpoint = Weights(first);
        var resumed = Trainer.Resume(dir);
        Assert.Equal(2, resumed.StartStep);
        Assert.Equal(atCheckpoint, Weights(resumed));
        resumed.Run();
        Assert.Equal(Weights(straight), Weights(resumed));
        Assert.Equal(Weights(serial), Weights(resumed));
    }

    [Fact]
    public void HostWorkQueue_ServesEndOfStepWorkFirst_ThenTheDeferredInTheOrderTheNextForwardNeedsThem()
    {
        var queue = new HostWorkQueue<Work>(w => w.Stage, w => w.Seq);
        // A backward's arrival order: the head and the last layers (due at the end of the step), then the deferred
        // layers nearest the input (stage 2, then 1), the embedding (stage 0) last.
        Work[] arrivals = [new("head", -1, 0), new("layer 3", -1, 1), new("layer 1", 2, 2), new("layer 0", 1, 3), new("layer 2", -1, 4), new("embedding", 0, 5)];
        foreach (var a in arrivals) queue.Add(a);
        queue.Complete();
        var served = new List<string>();
        while (queue.Take() is { } w) served.Add(w.Name);
        Assert.Equal(["head", "layer 3", "layer 2", "embedding", "layer 0", "layer 1"], served);
    }

    private sealed record Work(string Name, int Stage, long Seq);
}

/// <summary>Bad deferral settings: one error line, exit code 2, nothing written.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class OffloadDeferralCliTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-deferral-cli-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData("--offload-defer-layers", "1")] // without the deferred schedule
    [InlineData("--offload-schedule", "deferred", "--offload-defer-layers", "0")]
    [InlineData("--offload-schedule", "deferred", "--offload-defer-layers", "3")] // tiny has 2 decoder layers
    public void BadDeferralKnobs_GiveOneErrorLineAndExitCode2(params string[] knobs)
    {
        var never = Path.Combine(_root, "never");
        string[] args = ["train", "--model", "tiny", "--offload", "dense", "--steps", "1", .. knobs, "--out", never];
        var (code, stderr) = CliTests.Run(args);
        Assert.Equal(2, code);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: --offload-defer-layers", line);
        Assert.False(Directory.Exists(never));
    }

    [Fact]
    public void ADeferredRun_FromTheCommandLine_DrawsItsTimeline()
    {
        var dir = Path.Combine(_root, "run");
        var (code, stderr) = CliTests.Run("train", "--model", "tiny", "--seq", "16", "--batch", "2", "--steps", "2", "--synthetic-bytes", "20000",
            "--per-layer", "--offload", "dense", "--offload-schedule", "deferred", "--out", dir);
        Assert.True(code == 0, stderr);
        var png = File.ReadAllBytes(Path.Combine(dir, "offload-timeline.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.Contains(OffloadTimeline.Read(dir)!.Events, e => e.Lane == OffloadLane.DeferredApply);
    }
}
