using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;

namespace TensorLite.Perf;

/// <summary>
/// The MLP gate of LLaMA, forward and backward through autograd on the CPU backend: silu(gate)·up as two ops (the
/// baseline) against the fused SwiGLU op. Shapes are the gate activations of a seq-256 × batch-2 step: [512, 1376]
/// for llama_60m and [512, 2048] for llama_130m. Both give the same bits; the fused op reads the data once and keeps
/// one tensor less for backward.
/// </summary>
[Config(typeof(SwiGluConfig))]
public class SwiGluBenchmarks
{
    private Tensor? _gate, _up, _gradient;

    [Params("512x1376", "512x2048")]
    public string Shape { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        var dims = Shape.Split('x').Select(int.Parse).ToArray();
        var gen = new Generator(5);
        _gate = Tensor.RandN(dims, gen).RequireGrad().Persist();
        _up = Tensor.RandN(dims, gen).RequireGrad().Persist();
        _gradient = Tensor.RandN(dims, gen).Persist();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _gate?.Dispose();
        _up?.Dispose();
        _gradient?.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void SiluTimesUp() => Step(() => { using var act = _gate!.Silu(); return act * _up!; });

    [Benchmark]
    public void FusedSwiGlu() => Step(() => _gate!.SwiGlu(_up!));

    private void Step(Func<Tensor> forward)
    {
        using var scope = TensorScope.Enter();
        forward().Backward(_gradient!);
        _gate!.ZeroGrad();
        _up!.ZeroGrad();
    }
}

public sealed class SwiGluConfig : ManualConfig
{
    public SwiGluConfig()
    {
        AddJob(Job.Default.WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(15).WithId("short"));
        AddColumn(StatisticColumn.Median);
    }
}
