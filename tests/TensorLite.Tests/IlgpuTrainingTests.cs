using System.Text.Json;
using TensorLite.Ilgpu;
using TensorLite.Models;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>Runs on the ILGPU backend (`--device ilgpu-cpu`: its kernels emulated by ILGPU's CPU accelerator) and on the
/// managed CPU backend, in a folder of their own. Every kernel launch costs milliseconds on the CPU accelerator, so the
/// model is the tiny config with one decoder layer.</summary>
public sealed class IlgpuTrainingRuns : IDisposable
{
    static IlgpuTrainingRuns() => IlgpuDevices.Register();

    public string Root { get; } = Directory.CreateTempSubdirectory("tl-ilgpu-train-").FullName;

    public IlgpuTrainingRuns()
    {
        File.WriteAllText(Path.Combine(Root, "one-layer.json"), (LlamaConfig.FromName("tiny") with { NumHiddenLayers = 1 }).ToJson());
        Baseline = (Train(Options(steps: 2), "baseline-cpu"), Train(Options(steps: 2) with { Device = "ilgpu-cpu" }, "baseline-ilgpu"));
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);

    /// <summary>Two AdamW steps with evaluation and a checkpoint, on each backend.</summary>
    public (Run Cpu, Run Ilgpu) Baseline { get; }

    public sealed record Run(Trainer Trainer, float[] Losses, float[][] Initial);

    public TrainingOptions Options(int steps) => new()
    {
        Model = Path.Combine(Root, "one-layer.json"), Seq = 16, Batch = 2, Steps = steps, Warmup = 1, EvalEvery = steps,
        EvalBatches = 1, CheckpointEvery = steps, LogEvery = 1, SyntheticBytes = 20_000, Rank = 8, UpdateGap = 2,
    };

    public Run Train(TrainingOptions options, string name)
    {
        var trainer = Trainer.Create(options, Path.Combine(Root, name));
        var initial = trainer.Model.Parameters().Select(p => p.ToArray()).ToArray();
        trainer.Run();
        var losses = File.ReadLines(Path.Combine(trainer.RunDir, "metrics.jsonl"))
            .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("loss").GetSingle()).ToArray();
        return new Run(trainer, losses, initial);
    }
}

/// <summary>
/// Whole tiny-LLaMA training runs (forward, backward, optimizer step, evaluation, checkpoint) on the ILGPU backend
/// against the managed CPU backend. Both run the same program through the same seam, so losses agree to float rounding
/// (the kernels sum in other orders) and so do the weights' updates.
/// </summary>
public sealed class IlgpuTrainingTests(IlgpuTrainingRuns runs) : IClassFixture<IlgpuTrainingRuns>
{
    [Fact]
    public void TwoAdamWSteps_OnTheIlgpuBackend_MatchTheCpuBackend() => AssertSameTraining(runs.Baseline.Cpu, runs.Baseline.Ilgpu, 1e-2);

    [Theory]
    [InlineData("adamw", null, true, "fp32")]
    [InlineData("adamw", null, false, "bf16")]
    [InlineData("galore", "rsvd", false, "fp32")]
    public void AStep_OnTheIlgpuBackend_MatchesTheCpuBackend(string optimizer, string? projection, bool perLayer, string dtype)
    {
        // "bf16": bf16 weights and bf16 activations, so the mixed-precision GEMM, the half-precision element-wise path
        // and the bf16 optimizer kernels all run.
        var options = runs.Options(steps: 1) with { Optimizer = optimizer, Projection = projection, PerLayer = perLayer, Weights = dtype, Activations = dtype };
        string name = $"{optimizer}-{projection}-{perLayer}-{dtype}";
        var cpu = runs.Train(options, name + "-cpu");
        var ilgpu = runs.Train(options with { Device = "ilgpu-cpu" }, name + "-ilgpu");
        // bf16 weights: a float32 difference of one rounding can move a stored weight by one bf16 unit.
        AssertSameTraining(cpu, ilgpu, dtype == "bf16" ? 5e-2 : 1e-2);
    }

    private static void AssertSameTraining(IlgpuTrainingRuns.Run cpu, IlgpuTrainingRuns.Run ilgpu, double updateTolerance)
    {
        Assert.Equal("ilgpu-cpu", ilgpu.Trainer.Device.Name);
        Assert.All(ilgpu.Trainer.Model.Parameters(), p => Assert.Same(ilgpu.Trainer.Device, p.Backend));
        Assert.Equal(cpu.Initial, ilgpu.Initial);
        Assert.Equal(cpu.Losses.Length, ilgpu.Losses.Length);
        for (int i = 0; i < cpu.Losses.Length; i++) Assert.Equal(cpu.Losses[i], ilgpu.Losses[i], 1e-4f);
        Assert.Equal(cpu.Trainer.LastValidationLoss!.Value, ilgpu.Trainer.LastValidationLoss!.Value, 1e-4f);

        // Adam divides by the root of the second moment, so an element whose gradient is nearly zero moves by about the
        // learning rate in a direction set by rounding noise: compare whole updates, not single elements.
        var expected = cpu.Trainer.Model.Parameters().Select(p => p.ToArray()).ToArray();
        var actual = ilgpu.Trainer.Model.Parameters().Select(p => p.ToArray()).ToArray();
        for (int i = 0; i < expected.Length; i++)
        {
            double difference = 0, update = 0;
            for (int j = 0; j < expected[i].Length; j++)
            {
                difference += Math.Pow(expected[i][j] - actual[i][j], 2);
                update += Math.Pow(expected[i][j] - cpu.Initial[i][j], 2);
            }
            double relative = Math.Sqrt(difference / update);
            Assert.True(relative <= updateTolerance, $"parameter {i}: the ILGPU update differs from the CPU update by {relative:P2}");
        }

        // The tensors the ledger counted were taken from the device's caching allocator, which held at least that much.
        var allocator = Assert.IsAssignableFrom<IDeviceAllocator>(ilgpu.Trainer.Device);
        Assert.True(ilgpu.Trainer.Memory.PeakBytes > 0);
        Assert.True(allocator.PeakReservedBytes >= ilgpu.Trainer.Memory.PeakBytes,
            $"allocator peak {allocator.PeakReservedBytes} < ledger peak {ilgpu.Trainer.Memory.PeakBytes}");
    }

    [Fact]
    public void ARunCheckpointedOnTheIlgpuBackend_ReopensThereOrOnTheCpuBackend_AndGeneratesTheSameTokens()
    {
        var trained = runs.Baseline.Ilgpu.Trainer;
        var weights = trained.Model.Parameters().SelectMany(p => p.ToArray()).ToArray();
        var reopened = Trainer.Open(trained.RunDir);
        Assert.Equal("ilgpu-cpu", reopened.Device.Name);
        Assert.Equal(weights, reopened.Model.Parameters().SelectMany(p => p.ToArray()));
        var moved = Trainer.Open(trained.RunDir, deviceName: "cpu");
        Assert.Equal("cpu", moved.Device.Name);
        Assert.Equal(weights, moved.Model.Parameters().SelectMany(p => p.ToArray()));
        Assert.Equal(trained.LastValidationLoss!.Value, moved.Evaluate(1), 1e-4f);

        // Greedy generation picks the same tokens from the trained model, from its checkpoint reopened on the ILGPU
        // backend and from the checkpoint moved to the CPU.
        int[] prompt = [10, 20, 30];
        int[] Generate(Trainer t)
        {
            using (Backend.Use(t.Device))
                return Sampling.Generate(t.Model, prompt, 8, temperature: 0f, topK: 0, new Generator(1), context: 16);
        }
        var onCpu = Generate(moved);
        Assert.Equal(onCpu, Generate(trained));
        Assert.Equal(onCpu, Generate(reopened));
    }
}
