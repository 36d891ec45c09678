using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

public sealed class TrainerTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-train-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static TrainingOptions Small(int steps = 6) => new()
    {
        Model = "tiny", Seq = 16, Batch = 2, GradAccum = 2, Steps = steps, Warmup = 2, EvalEvery = 3, EvalBatches = 2,
        CheckpointEvery = 3, LogEvery = 1, SyntheticBytes = 20_000, LearningRate = 3e-3f,
    };

    private static float[][] Weights(Trainer t) => t.Model.Parameters().Select(p => p.ToArray()).ToArray();

    [Theory]
    [InlineData("adamw")]
    [InlineData("galore")]
    [InlineData("osd")]
    [InlineData("grass")]
    [InlineData("frugal")]
    public void ResumedRun_IsBitwiseIdenticalToAnUninterruptedOne(string optimizer)
    {
        var options = Small() with { Optimizer = optimizer, Rank = 8, UpdateGap = 2 };
        var straight = Trainer.Create(options, Path.Combine(_root, "a"));
        straight.Run();

        var dirB = Path.Combine(_root, "b");
        var first = Trainer.Create(options, dirB);
        using var stop = new CancellationTokenSource();
        first.Progress += p => { if (p.Step == 3) stop.Cancel(); };
        first.Run(stop.Token);
        Assert.EndsWith("step-0000003", Checkpoints.Latest(dirB));

        var resumed = Trainer.Resume(dirB);
        Assert.Equal(3, resumed.StartStep);
        resumed.Run();
        var expected = Weights(straight);
        var actual = Weights(resumed);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i]);
        Assert.Equal(straight.LastValidationLoss, resumed.LastValidationLoss);
        string Losses(string dir) => string.Join("\n", File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Select(l => l.Split(",\"lr\"")[0]));
        Assert.Equal(Losses(Path.Combine(_root, "a")), Losses(dirB));
    }

    [Fact]
    public void Resume_WithMoreStepsOrAnotherDevice_RecordsThemInTheRunFolder()
    {
        var dir = Path.Combine(_root, "extended");
        Trainer.Create(Small(steps: 3), dir).Run();
        var resumed = Trainer.Resume(dir, steps: 6, deviceName: "auto");
        Assert.Equal(3, resumed.StartStep);
        // A second interruption resumed without options continues towards 6 steps on the device chosen last.
        var reopened = Trainer.Open(dir);
        Assert.Equal(6, reopened.Options.Steps);
        Assert.Equal("auto", reopened.Options.Device);
        var untouched = Path.Combine(_root, "untouched");
        Trainer.Create(Small(steps: 3), untouched).Run();
        string before = File.ReadAllText(Path.Combine(untouched, "train.json"));
        Trainer.Resume(untouched);
        Assert.Equal(before, File.ReadAllText(Path.Combine(untouched, "train.json")));
    }

    [Fact]
    public void CrashDuringCheckpointWrite_LeavesThePreviousCheckpointIntact()
    {
        var dir = Path.Combine(_root, "crash");
        var trainer = Trainer.Create(Small(), dir);
        Checkpoints.BeforeFileWrite = file =>
        {
            if (file == Checkpoints.OptimizerFile && trainer.Optimizer.StepCount == 6) throw new IOException("simulated crash");
        };
        try
        {
            Assert.Throws<IOException>(() => trainer.Run());
        }
        finally
        {
            Checkpoints.BeforeFileWrite = null;
        }
        var latest = Checkpoints.Latest(dir)!;
        Assert.EndsWith("step-0000003", latest);
        Assert.Empty(Directory.GetDirectories(Checkpoints.Folder(dir), ".tmp-*"));
        var reopened = Trainer.Open(dir); // checksums verify
        Assert.Equal(3, reopened.StartStep);
    }

    [Fact]
    public void CorruptCheckpoint_IsDetectedByItsChecksum()
    {
        var dir = Path.Combine(_root, "corrupt");
        Trainer.Create(Small(3), dir).Run();
        var model = Path.Combine(Checkpoints.Latest(dir)!, Checkpoints.ModelFile);
        var bytes = File.ReadAllBytes(model);
        bytes[^1] ^= 0xFF;
        File.WriteAllBytes(model, bytes);
        Assert.Contains("checksum", Assert.Throws<TensorLiteException>(() => Trainer.Open(dir)).Message);
    }

    [Fact]
    public void NonFiniteValues_StopTrainingNamingStepAndTensor_KeepingTheCheckpoint()
    {
        var dir = Path.Combine(_root, "nan");
        var trainer = Trainer.Create(Small(), dir);
        var target = trainer.Model.Layers[0].UpProj;
        trainer.Progress += p =>
        {
            if (p.Step != 4) return;
            var values = target.ToArray();
            values[0] = float.NaN;
            target.Backend.CopyFromHost(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()), target);
        };
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Run());
        Assert.Contains("step 5", e.Message);
        Assert.Contains("model.layers.0.mlp.up_proj.weight", e.Message);
        Assert.Contains("step-0000003", e.Message);
        Assert.EndsWith("step-0000003", Checkpoints.Latest(dir));
    }

    [Fact]
    public void BadInputs_AreRefusedBeforeAnythingIsWritten()
    {
        var empty = Path.Combine(_root, "empty.txt");
        File.WriteAllText(empty, "");
        var binary = Path.Combine(_root, "data.bin");
        File.WriteAllBytes(binary, [1, 2, 0, 3, 4]);
        var badConfig = Path.Combine(_root, "config.json");
        File.WriteAllText(badConfig, """{"hidden_size": 64, "num_attention_heads": 5, "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 256}""");
        string Fail(TrainingOptions o) => Assert.ThrowsAny<Exception>(() => Trainer.Create(o, Path.Combine(_root, "never"))).Message;
        Assert.Contains("does not exist", Fail(Small() with { Data = [Path.Combine(_root, "missing.txt")] }));
        Assert.Contains("is empty", Fail(Small() with { Data = [empty] }));
        Assert.Contains("looks binary", Fail(Small() with { Data = [binary] }));
        Assert.Contains("must divide hidden_size", Fail(Small() with { Model = badConfig }));
        Assert.Contains("Unknown model config", Fail(Small() with { Model = "llama_3t" }));
        Assert.Contains("--seq", Fail(Small() with { Seq = 0 }));
        Assert.False(Directory.Exists(Path.Combine(_root, "never")));

        var dir = Path.Combine(_root, "taken");
        Trainer.Create(Small(3), dir).Run();
        var before = File.ReadAllText(Path.Combine(dir, "metrics.jsonl"));
        Assert.Contains("already holds a run", Assert.Throws<TensorLiteException>(() => Trainer.Create(Small(), dir)).Message);
        Assert.Equal(before, File.ReadAllText(Path.Combine(dir, "metrics.jsonl")));
    }

    [Fact]
    public void TextFiles_AreTokenizedOnceAndCached()
    {
        var text = Path.Combine(_root, "corpus.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("to be or not to be, that is the question. ", 40)));
        var dir = Path.Combine(_root, "files");
        var t = Trainer.Create(Small(3) with { Data = [text] }, dir);
        Assert.Single(Directory.GetFiles(dir, "tokens-*.bin"));
        Assert.Null(t.Data.EntropyFloorNats);
        t.Run();
        Assert.True(t.LastValidationLoss < 5.6f);
    }
}
