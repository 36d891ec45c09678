using TensorLite.Autograd;
using TensorLite.Backends.Cpu;
using TensorLite.Ilgpu;
using TensorLite.Optim;
using TensorLite.Optim.Offload;
using TensorLite.Optim.Projected;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The host-offloaded inner optimizer (docs/offload.md): the same bits as without offload on the CPU (dense
/// AdamW, GaLore, GRASS; serial and overlapped schedules; resumed runs), close results on the ILGPU backend, and the
/// bytes a step moves equal to their formula.</summary>
public sealed class OffloadTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>, IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-offload-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    // ---- optimizer level ----------------------------------------------------------------------------

    /// <summary>Two projected matrices (one tall, one wide: GaLore's std projects them on different sides) and a dense
    /// vector, named as LLaMA's so the default predicate projects the matrices.</summary>
    private static readonly (string Name, int[] Shape)[] Shapes =
    [
        ("layers.0.mlp.up.weight", [24, 16]),
        ("layers.0.self_attn.o.weight", [12, 20]),
        ("layers.0.norm.weight", [16]),
    ];

    private static List<(string Name, Tensor Parameter)> MakeParameters(IBackend backend, ulong seed)
    {
        var gen = new Generator(seed);
        return Shapes.Select(s => (s.Name, Tensor.RandN(s.Shape, gen, backend: backend).RequireGrad().Persist())).ToList();
    }

    /// <summary>A gradient that depends on the step and on the parameter (G = noise + 0.5·W).</summary>
    private static void SetGradients(List<(string Name, Tensor Parameter)> ps, int step)
    {
        using var noGrad = GradMode.NoGrad();
        for (int i = 0; i < ps.Count; i++)
        {
            var p = ps[i].Parameter;
            using var a = Tensor.RandN(p.Shape, new Generator((ulong)(step * 31 + i + 1)), backend: p.Backend);
            using var half = p * 0.5f;
            p.Grad?.Dispose();
            p.Grad = (a + half).Persist();
        }
    }

    private static OptimizerSpec Spec(string method, string states = "fp32") => OptimizerSpec.Parse(method, states: states) with
    {
        LearningRate = 0.02f, WeightDecay = 0.1f, Rank = 4, UpdateGap = 2, Seed = 5,
    };

    /// <summary>Steps <paramref name="opt"/> like per-layer training: the parameters in backward (reverse) order, then
    /// the engine drains (the device applies the host updates).</summary>
    private static void StepLikeBackward(Optimizer opt, List<(string Name, Tensor Parameter)> ps, int step)
    {
        SetGradients(ps, step);
        opt.BeginStep();
        for (int i = ps.Count - 1; i >= 0; i--) opt.StepParameter(i);
        (opt as ProjectedOptimizer)?.Offload?.Drain();
    }

    private static Dictionary<string, float[]> State(Optimizer opt) =>
        opt.StateTensors().Where(x => x.Tensor.DType == DType.Float32).ToDictionary(x => x.Name, x => x.Tensor.ToArray());

    [Theory]
    [InlineData("adamw", true)]
    [InlineData("adamw", false)]
    [InlineData("galore", true)]
    [InlineData("galore", false)]
    [InlineData("grass", true)]
    [InlineData("adamw", true, "8bit")]
    [InlineData("galore", true, "factored")]
    public void OffloadedOptimizer_OnCpu_GivesTheBitsOfTheOneWithout(string method, bool overlap, string states = "fp32")
    {
        var spec = Spec(method, states);
        var reference = MakeParameters(CpuBackend.Instance, 1);
        var offloaded = MakeParameters(CpuBackend.Instance, 1);
        var plain = spec.Create(reference, DType.Float32);
        using var engine = new OffloadEngine(CpuBackend.Instance, overlap);
        var opt = OffloadedOptimizer.Create(spec, offloaded, DType.Float32, engine);
        for (int step = 0; step < 4; step++)
        {
            StepLikeBackward(plain, reference, step);
            StepLikeBackward(opt, offloaded, step);
        }
        for (int i = 0; i < reference.Count; i++) Assert.Equal(reference[i].Parameter.ToArray(), offloaded[i].Parameter.ToArray());
        // The moments are the same numbers, kept on the host under the names a run without offload checkpoints.
        var expected = State(plain);
        var actual = State(opt);
        foreach (var (name, values) in expected.Where(x => x.Key.EndsWith("exp_avg_sq", StringComparison.Ordinal)))
            Assert.Equal(values, actual[name]);
        Assert.True(opt.StateTensors().Where(x => x.Name.EndsWith("exp_avg", StringComparison.Ordinal)).All(x => x.Tensor.Backend == CpuBackend.Instance));
    }

    [Theory]
    [InlineData("adamw")]
    [InlineData("grass")]
    public void OffloadedOptimizer_OnIlgpu_KeepsStatesOnTheHost_AndMatchesTheDeviceOptimizer(string method)
    {
        var gpu = fixture.Backend;
        var spec = Spec(method);
        var reference = MakeParameters(gpu, 2);
        var offloaded = MakeParameters(gpu, 2);
        var plain = spec.Create(reference, DType.Float32);
        using var engine = new OffloadEngine(CpuBackend.Instance, overlap: true);
        var opt = OffloadedOptimizer.Create(spec, offloaded, DType.Float32, engine);
        for (int step = 0; step < 3; step++)
        {
            StepLikeBackward(plain, reference, step);
            StepLikeBackward(opt, offloaded, step);
        }
        for (int i = 0; i < reference.Count; i++)
        {
            Assert.Same(gpu, offloaded[i].Parameter.Backend);
            float[] a = reference[i].Parameter.ToArray(), b = offloaded[i].Parameter.ToArray();
            for (int j = 0; j < a.Length; j++) Assert.True(Math.Abs(a[j] - b[j]) <= 1e-5f * (1 + Math.Abs(a[j])), $"{reference[i].Name}[{j}]: {a[j]} vs {b[j]}");
        }
        Assert.All(opt.StateTensors().Where(x => x.Name.EndsWith("exp_avg", StringComparison.Ordinal)), x => Assert.Same(CpuBackend.Instance, x.Tensor.Backend));
        Assert.True(engine.StepBytesToHost > 0 && engine.StepBytesToDevice > 0);
    }

    [Fact]
    public void DeviceBudget_OnIlgpu_IsHonouredWithOffload_WhereTheDeviceOptimizerExceedsIt()
    {
        var gpu = fixture.Backend;
        var spec = Spec("adamw");
        var offloaded = MakeParameters(gpu, 4);
        var onDevice = MakeParameters(gpu, 4);
        using var engine = new OffloadEngine(CpuBackend.Instance, overlap: true);
        var opt = OffloadedOptimizer.Create(spec, offloaded, DType.Float32, engine);
        var plain = spec.Create(onDevice, DType.Float32);
        SetGradients(offloaded, 0);
        SetGradients(onDevice, 0);
        long momentBytes = 8 * Shapes.Sum(s => (long)ShapeMath.Numel(s.Shape));
        // The device may grow by half of AdamW's moments: the offloaded optimizer keeps them on the host and fits;
        // the device optimizer's first moment tensors are refused by the device's ledger.
        gpu.Memory.LimitBytes = gpu.Memory.LiveBytes + momentBytes / 2;
        try
        {
            opt.BeginStep();
            for (int i = offloaded.Count - 1; i >= 0; i--) opt.StepParameter(i);
            engine.Drain();
            Assert.Throws<OutOfMemoryException>(() => plain.Step());
        }
        finally
        {
            gpu.Memory.LimitBytes = null;
        }
    }

    [Fact]
    public void BytesMovedPerStep_AreTheFormula()
    {
        // Dense offload: the float32 gradient to the host and the fp32 weights back, 2·4·numel per parameter; the
        // first step also copies the weights to the host once.
        long numel = Shapes.Sum(s => (long)ShapeMath.Numel(s.Shape));
        var (first, second) = BytesOfTwoSteps("adamw");
        Assert.Equal((8 * numel, 4 * numel), first);
        Assert.Equal((4 * numel, 4 * numel), second);
        // GaLore rank 4 (std sides): [24, 16] is tall, so R = G·P is [24, 4]; [12, 20] is wide, so R = Pᵀ·G is [4, 20].
        // Only R and its direction move (4 bytes each way); the dense vector moves as in dense offload.
        long r = 24 * 4 + 4 * 20;
        (first, second) = BytesOfTwoSteps("galore");
        Assert.Equal((4 * r + 8 * 16, 4 * r + 4 * 16), first);
        Assert.Equal((4 * r + 4 * 16, 4 * r + 4 * 16), second);
    }

    private static ((long, long) First, (long, long) Second) BytesOfTwoSteps(string method)
    {
        var ps = MakeParameters(CpuBackend.Instance, 3);
        using var engine = new OffloadEngine(CpuBackend.Instance, overlap: true);
        var opt = OffloadedOptimizer.Create(Spec(method), ps, DType.Float32, engine);
        engine.BeginStep();
        StepLikeBackward(opt, ps, 0);
        var first = (engine.StepBytesToHost, engine.StepBytesToDevice);
        engine.BeginStep();
        StepLikeBackward(opt, ps, 1);
        return (first, (engine.StepBytesToHost, engine.StepBytesToDevice));
    }

    // ---- training runs --------------------------------------------------------------------------------

    private static TrainingOptions Small(string optimizer, string offload, int steps = 6) => new()
    {
        Model = "tiny", Seq = 16, Batch = 2, GradAccum = 2, Steps = steps, Warmup = 2, EvalEvery = 3, EvalBatches = 1,
        CheckpointEvery = 3, LogEvery = 1, SyntheticBytes = 20_000, LearningRate = 3e-3f, Optimizer = optimizer, Rank = 8,
        UpdateGap = 2, Offload = offload, PerLayer = true,
    };

    private static float[][] Weights(Trainer t) => t.Model.Parameters().Select(p => p.ToArray()).ToArray();

    private Trainer Train(TrainingOptions options, string name)
    {
        var trainer = Trainer.Create(options, Path.Combine(_root, name));
        trainer.Run();
        return trainer;
    }

    [Theory]
    [InlineData("galore")]
    [InlineData("grass")] // factored gradients: R comes from the layer's factors
    public void PerLayerTraining_OverlappedEqualsSerialEqualsNoOffload_BitForBit(string optimizer)
    {
        var none = Train(Small(optimizer, "none", steps: 4), optimizer + "-none");
        var serial = Train(Small(optimizer, "host", steps: 4) with { OffloadSchedule = "serial" }, optimizer + "-serial");
        var overlapped = Train(Small(optimizer, "host", steps: 4), optimizer + "-overlap");
        Assert.Equal(Weights(none), Weights(serial));
        Assert.Equal(Weights(none), Weights(overlapped));
        // The run reports what moved and writes the step's timeline.
        var last = MetricsLog.Read(Path.Combine(_root, optimizer + "-overlap", MetricsLog.FileName), out _)[^1];
        Assert.True(last.GetProperty("offload_bytes_to_host").GetInt64() > 0);
        Assert.True(last.GetProperty("offload_wait_s").GetDouble() >= 0);
        var timeline = OffloadTimeline.Read(Path.Combine(_root, optimizer + "-overlap"));
        Assert.NotNull(timeline);
        Assert.Contains(timeline!.Events, e => e.Lane == OffloadLane.HostUpdate);
        Assert.Contains(timeline.Events, e => e.Lane == OffloadLane.DeviceCompute);
    }

    [Theory]
    [InlineData("adamw", "dense")]
    [InlineData("grass", "host")]
    public void ResumedOffloadedRun_IsBitwiseIdenticalToAnUninterruptedOne(string optimizer, string offload)
    {
        var options = Small(optimizer, offload);
        var straight = Train(options, "straight");
        var dir = Path.Combine(_root, "interrupted");
        var first = Trainer.Create(options, dir);
        using var stop = new CancellationTokenSource();
        first.Progress += p => { if (p.Step == 3) stop.Cancel(); };
        first.Run(stop.Token);
        var resumed = Trainer.Resume(dir);
        Assert.Equal(3, resumed.StartStep);
        resumed.Run();
        Assert.Equal(Weights(straight), Weights(resumed));
    }

    [Fact]
    public void Plan_ShowsTheHostApart_AndMovesWhatTheOptimizerFormulaSays()
    {
        var dense = MemoryPlan.Predict(Small("adamw", "dense"));
        var none = MemoryPlan.Predict(Small("adamw", "none"));
        // The optimizer states leave the device for the host.
        Assert.True(none.AtPeak.OptimizerState > 0);
        Assert.Equal(0, dense.AtPeak.OptimizerState);
        Assert.Equal(none.AtPeak.OptimizerState, dense.HostAtPeak.OptimizerState);
        long weightBytes = 4 * dense.ParameterCount;
        Assert.Equal((weightBytes, weightBytes), dense.BytesMovedPerStep);
        Assert.Contains("on the host", dense.Render());
    }
}

/// <summary>Bad offload settings: one error line, exit code 2, nothing written.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class OffloadCliTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-offload-cli-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void BadOffloadKnobs_GiveOneErrorLineAndExitCode2()
    {
        var never = Path.Combine(_root, "never");
        foreach (var args in new[]
        {
            new[] { "train", "--model", "tiny", "--offload", "gpu", "--out", never },
            ["train", "--model", "tiny", "--offload", "dense", "--optimizer", "galore", "--out", never],
            ["train", "--model", "tiny", "--offload", "lsp", "--out", never],
            ["train", "--model", "tiny", "--offload", "host", "--optimizer", "frugal", "--out", never],
            ["train", "--model", "tiny", "--offload", "host", "--offload-schedule", "sometimes", "--out", never],
            ["train", "--model", "tiny", "--offload", "dense", "--shard-states", "--out", never],
            ["train", "--model", "tiny", "--device-memory", "4GB", "--out", never],
            ["train", "--model", "tiny", "--offload", "dense", "--device-memory", "lots", "--out", never],
            ["plan", "--model", "tiny", "--offload", "dense", "--device-memory", "1MB"],
        })
        {
            var (code, stderr) = CliTests.Run(args);
            Assert.Equal(2, code);
            var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.StartsWith("error: ", lines[0]);
            if (args[0] == "train") Assert.Single(lines);
        }
        Assert.False(Directory.Exists(never));
    }

    [Fact]
    public void DeviceBudgetBelowTheWeights_IsRefusedByPlanAndTrain_NamingTheWeights()
    {
        var never = Path.Combine(_root, "never");
        var (code, stderr) = CliTests.Run("train", "--model", "tiny", "--offload", "dense", "--device-memory", "200000B", "--out", never);
        Assert.Equal(2, code);
        Assert.StartsWith("error: the weights alone take", stderr);
        Assert.False(Directory.Exists(never));
        (code, stderr) = CliTests.Run("plan", "--model", "tiny", "--offload", "dense", "--device-memory", "200000B");
        Assert.Equal(2, code);
        Assert.StartsWith("error: the weights alone take", stderr);
    }
}
