using System.Text.Json;
using TensorLite.Kernels;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// Whole tiny-LLaMA training runs (forward, backward, optimizer step, evaluation, checkpoint) on the ILGPU backend —
/// its kernels emulated by ILGPU's CPU accelerator, `--device ilgpu-cpu` — against the managed CPU backend. Both run
/// the same program through the same seam, so losses and weights agree to float rounding (the kernels sum in other orders).
/// </summary>
public sealed class IlgpuTrainingTests : IDisposable
{
    static IlgpuTrainingTests() => IlgpuDevices.Register();

    private readonly string _root = Directory.CreateTempSubdirectory("tl-ilgpu-train-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static TrainingOptions Tiny(string device) => new()
    {
        Model = "tiny", Seq = 16, Batch = 2, Steps = 2, Warmup = 1, EvalEvery = 2, EvalBatches = 1, CheckpointEvery = 2,
        LogEvery = 1, SyntheticBytes = 20_000, Device = device, Rank = 8, UpdateGap = 2,
    };

    private (Trainer Trainer, float[] Losses, float[][] Initial) Train(TrainingOptions options, string name)
    {
        var trainer = Trainer.Create(options, Path.Combine(_root, name));
        var initial = trainer.Model.Parameters().Select(p => p.ToArray()).ToArray();
        trainer.Run();
        var losses = File.ReadLines(Path.Combine(trainer.RunDir, "metrics.jsonl"))
            .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("loss").GetSingle()).ToArray();
        return (trainer, losses, initial);
    }

    [Theory]
    [InlineData("adamw", null, false, "fp32")]
    [InlineData("adamw", null, true, "fp32")]
    [InlineData("adamw", null, false, "bf16")]
    public void TrainingSteps_OnTheIlgpuBackend_MatchTheCpuBackend(string optimizer, string? projection, bool perLayer, string dtype)
    {
        // "bf16": bf16 weights and bf16 activations, so the mixed-precision GEMM, the half-precision element-wise path
        // and the bf16 optimizer kernels all run.
        var options = Tiny("cpu") with { Optimizer = optimizer, Projection = projection, PerLayer = perLayer, Weights = dtype, Activations = dtype };
        var (cpu, cpuLosses, initial) = Train(options, "cpu");
        var (gpu, gpuLosses, gpuInitial) = Train(options with { Device = "ilgpu-cpu" }, "ilgpu");

        Assert.Equal("ilgpu-cpu", gpu.Device.Name);
        Assert.All(gpu.Model.Parameters(), p => Assert.Same(gpu.Device, p.Backend));
        Assert.Equal(initial, gpuInitial);
        Assert.Equal(cpuLosses.Length, gpuLosses.Length);
        for (int i = 0; i < cpuLosses.Length; i++) Assert.Equal(cpuLosses[i], gpuLosses[i], 1e-4f);
        Assert.Equal(cpu.LastValidationLoss!.Value, gpu.LastValidationLoss!.Value, 1e-4f);

        // Adam divides by the root of the second moment, so an element whose gradient is nearly zero moves by about the
        // learning rate in a direction set by rounding noise: compare whole updates, not single elements.
        var expected = cpu.Model.Parameters().Select(p => p.ToArray()).ToArray();
        var actual = gpu.Model.Parameters().Select(p => p.ToArray()).ToArray();
        for (int i = 0; i < expected.Length; i++)
        {
            double difference = 0, update = 0;
            for (int j = 0; j < expected[i].Length; j++)
            {
                difference += Math.Pow(expected[i][j] - actual[i][j], 2);
                update += Math.Pow(expected[i][j] - initial[i][j], 2);
            }
            double relative = Math.Sqrt(difference / update);
            // bf16 weights: a float32 difference of one rounding can move a stored weight by one bf16 unit.
            Assert.True(relative <= (dtype == "bf16" ? 5e-2 : 1e-2), $"parameter {i}: the ILGPU update differs from the CPU update by {relative:P2}");
        }

        // The tensors the ledger counted were taken from the device's caching allocator, which held at least that much.
        var allocator = Assert.IsAssignableFrom<IDeviceAllocator>(gpu.Device);
        Assert.True(gpu.Memory.PeakBytes > 0);
        Assert.True(allocator.PeakReservedBytes >= gpu.Memory.PeakBytes,
            $"allocator peak {allocator.PeakReservedBytes} < ledger peak {gpu.Memory.PeakBytes}");
    }

    [Fact]
    public void ARunCheckpointedOnTheIlgpuBackend_ReopensThereOrOnTheCpuBackend()
    {
        var (gpu, _, _) = Train(Tiny("ilgpu-cpu"), "run");
        var weights = gpu.Model.Parameters().SelectMany(p => p.ToArray()).ToArray();
        var reopened = Trainer.Open(gpu.RunDir);
        Assert.Equal("ilgpu-cpu", reopened.Device.Name);
        Assert.Equal(weights, reopened.Model.Parameters().SelectMany(p => p.ToArray()));
        var moved = Trainer.Open(gpu.RunDir, deviceName: "cpu");
        Assert.Equal("cpu", moved.Device.Name);
        Assert.Equal(weights, moved.Model.Parameters().SelectMany(p => p.ToArray()));
        Assert.Equal(gpu.LastValidationLoss!.Value, moved.Evaluate(1), 1e-4f);
    }
}
