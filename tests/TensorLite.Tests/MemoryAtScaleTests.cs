using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using TensorLite.Backends.Meta;
using TensorLite.Memory;
using TensorLite.Tests.Support;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>Per-layer updates: the optimizer step inside backward must change nothing but memory.</summary>
public sealed class PerLayerUpdateTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-perlayer-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    // Every method, with the projections whose randomness or data dependence could make order matter.
    private static readonly (string Optimizer, string? Projection)[] Methods =
    [
        ("adamw", null), ("galore", "svd"), ("galore", "rsvd"), ("osd", null), ("grass", "topnorm"), ("grass", "uniform"),
        ("frugal", "blocks"), ("frugal", "random"), ("frugal", "columns"),
    ];

    private static readonly string[] States = ["fp32", "8bit", "factored"];

    private static TrainingOptions Options(int method, int accum, ulong seed, string states = "fp32") => new()
    {
        States = states,
        Model = "tiny", Seq = 16, Batch = 2, GradAccum = accum, Steps = 3, Warmup = 1, ClipNorm = 0, EvalEvery = 100,
        EvalBatches = 1, CheckpointEvery = 100, SyntheticBytes = 20_000, LearningRate = 3e-3f, Seed = seed,
        Optimizer = Methods[method].Optimizer, Projection = Methods[method].Projection, Rank = 8, UpdateGap = 2,
    };

    private float[][] Train(TrainingOptions options, string name)
    {
        var trainer = Trainer.Create(options, Path.Combine(_root, name));
        trainer.Run();
        return trainer.Model.Parameters().Select(p => p.ToArray()).ToArray();
    }

    [Property(MaxTest = 16)]
    public void PerLayerUpdates_GiveTheSameParameters_AsTheOrdinaryStep(NonNegativeInt method, NonNegativeInt states, bool accumulate, PositiveInt seed)
    {
        var options = Options(method.Get % Methods.Length, accumulate ? 2 : 1, (ulong)seed.Get, States[states.Get % States.Length]);
        string name = Guid.NewGuid().ToString("N"); // FsCheck may generate the same case twice
        var ordinary = Train(options, name + "-a");
        var perLayer = Train(options with { PerLayer = true }, name + "-b");
        for (int i = 0; i < ordinary.Length; i++) Assert.Equal(ordinary[i], perLayer[i]);
    }

    /// <summary>OSD's refresh from the factors follows the schedule of the step it starts, in both modes (it once read
    /// the previous step's learning rate in the ordinary step).</summary>
    [Fact]
    public void PerLayerUpdates_GiveTheSameParameters_AsTheOrdinaryStep_ForOsd() =>
        PerLayerUpdates_GiveTheSameParameters_AsTheOrdinaryStep(NonNegativeInt.NewNonNegativeInt(3), NonNegativeInt.NewNonNegativeInt(0), false, PositiveInt.NewPositiveInt(1));

    [Fact]
    public void PerLayerUpdates_WithGradientAccumulation_StepOncePerLogicalBatch()
    {
        var options = Options(0, 3, 5) with { PerLayer = true };
        var trainer = Trainer.Create(options, Path.Combine(_root, "accum"));
        trainer.Run();
        Assert.Equal(options.Steps, trainer.Optimizer.StepCount);
    }

    [Fact]
    public void PerLayerUpdates_WithClipping_ResumeBitwise()
    {
        // Clipping by the previous step's norm must survive a resume (the norm is saved in the checkpoint).
        var options = Options(1, 1, 9) with { PerLayer = true, ClipNorm = 0.5f, Steps = 4, CheckpointEvery = 2 };
        AssertResumeAtStep2IsBitwise(options, _root);
    }

    /// <summary>Trains <paramref name="options"/> (4 steps, checkpoints every 2) straight through and again stopped at
    /// step 2 and resumed; the parameters must end bit for bit equal. Returns the straight run.</summary>
    internal static Trainer AssertResumeAtStep2IsBitwise(TrainingOptions options, string root)
    {
        var straight = Trainer.Create(options, Path.Combine(root, "straight"));
        straight.Run();
        var first = Trainer.Create(options, Path.Combine(root, "stopped"));
        using var stop = new CancellationTokenSource();
        first.Progress += p => { if (p.Step == 2) stop.Cancel(); };
        first.Run(stop.Token);
        var resumed = Trainer.Resume(Path.Combine(root, "stopped"));
        resumed.Run();
        var a = straight.Model.Parameters().Select(p => p.ToArray()).ToArray();
        var b = resumed.Model.Parameters().Select(p => p.ToArray()).ToArray();
        for (int i = 0; i < a.Length; i++) Assert.Equal(a[i], b[i]);
        return straight;
    }
}

/// <summary>The planner against measured peaks, and the ledger's categories.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class MemoryPlanTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-plan-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData("adamw", "fp32", false, false, 1)]
    [InlineData("adamw", "fp32", true, false, 2)]
    [InlineData("adamw", "fp32", false, true, 1)]
    [InlineData("galore", "fp32", false, false, 1)]
    [InlineData("galore", "fp32", true, true, 1)]
    [InlineData("osd", "fp32", true, false, 1)]
    [InlineData("grass", "fp32", false, false, 2)]
    [InlineData("frugal", "fp32", true, false, 1)]
    [InlineData("lsp", "fp32", false, false, 1)]
    public void Plan_MatchesTheMeasuredPeakOfARun_WithinFivePercent(string optimizer, string states, bool perLayer, bool checkpoint, int accum)
    {
        var options = new TrainingOptions
        {
            Model = "tiny", Seq = 32, Batch = 4, GradAccum = accum, Steps = 2, Warmup = 1, EvalEvery = 100, EvalBatches = 1,
            CheckpointEvery = 100, SyntheticBytes = 20_000, Optimizer = optimizer, States = states, Rank = 8, UpdateGap = 1,
            PerLayer = perLayer, CheckpointLayers = checkpoint,
        };
        var plan = MemoryPlan.Predict(options);

        MemoryCounters.Settle();
        var ledger = Backend.Cpu.Memory;
        long baseline = ledger.LiveBytes;
        ledger.ResetPeak();
        Trainer.Create(options, Path.Combine(_root, $"{optimizer}-{perLayer}-{checkpoint}-{accum}")).Run();
        long measured = ledger.PeakBytes - baseline;

        Assert.InRange(plan.PeakTensorBytes, measured * 0.95, measured * 1.05);
    }

    [Fact]
    public void PerLayerUpdates_FreeEachGradientBeforeTheNextIsFinal()
    {
        // Reads the process-wide CPU ledger, hence this serial collection; other tests' undisposed gradients are the baseline.
        var options = new TrainingOptions
        {
            Model = "tiny", Seq = 16, Batch = 2, Steps = 3, Warmup = 1, EvalEvery = 100, EvalBatches = 1, CheckpointEvery = 100,
            SyntheticBytes = 20_000, Optimizer = "galore", Rank = 8, UpdateGap = 2, PerLayer = true,
        };
        var trainer = Trainer.Create(options, Path.Combine(_root, "alive"));
        MemoryCounters.Settle();
        var ledger = trainer.Memory;
        long baseline = ledger.Live.Gradients, mostAlive = 0;
        // Registered after the trainer's own hooks: by then each parameter's update has run and its gradient is gone.
        foreach (var p in trainer.Model.Parameters())
            p.RegisterGradHook(_ => mostAlive = Math.Max(mostAlive, ledger.Live.Gradients));
        trainer.Run();
        Assert.True(mostAlive <= baseline, $"{mostAlive - baseline} bytes of gradients alive when a hook ran");
        Assert.All(trainer.Model.Parameters(), p => Assert.Null(p.Grad));
    }

    [Fact]
    public void Ledger_CountsEachCategory_AndReleasesOnDispose()
    {
        var meta = new MetaBackend();
        using (Backend.Use(meta))
        {
            var w = Tensor.Empty([10, 10]).Tag(MemoryCategory.Weights);
            Tensor g;
            using (MemoryLedger.Categorize(MemoryCategory.Gradients)) g = Tensor.Empty([5]);
            var a = Tensor.Empty([3]);
            Assert.Equal(new MemoryBreakdown(12, 400, 20, 0, 0, 0), meta.Memory.Live);
            a.Dispose();
            g.Dispose();
            Assert.Equal(new MemoryBreakdown(0, 400, 0, 0, 0, 0), meta.Memory.Live);
            Assert.Equal(432, meta.Memory.PeakBytes);
            Assert.Equal(new MemoryBreakdown(12, 400, 20, 0, 0, 0), meta.Memory.AtPeak);
            w.Dispose();
            Assert.Equal(0, meta.Memory.LiveBytes);
        }
        Assert.Same(Backend.Cpu, Backend.Default);
    }

    [Fact]
    public void Plan_OfLlama7B_WithAdamW_CountsWeightsGradientsAndMoments()
    {
        var plan = MemoryPlan.Predict(new TrainingOptions { Model = "llama_7b", Seq = 256, Batch = 1 });
        long parameters = 6_738_415_616;
        Assert.Equal(parameters, plan.ParameterCount);
        // Float32 weights and AdamW's two moments live throughout; gradients peak at one full set.
        Assert.Equal(4 * parameters, plan.AtPeak.Weights);
        Assert.Equal(8 * parameters, plan.AtPeak.OptimizerState);
        Assert.InRange(plan.PeakTensorBytes, 16 * parameters, 16 * parameters + (2L << 30));
    }

    [Fact]
    public void HostMemoryBound_CountsTheGradientsCopy_OnlyWhenTheWholeModelsGradientsCoexist()
    {
        var config = Models.LlamaConfig.FromName("llama_7b");
        const double parameters = 6_738_415_616;
        var bf16 = new TrainingOptions { Model = "llama_7b", Weights = "bf16" };
        Assert.Equal(2 * 2 * parameters, MemoryPlan.MinimumHostBytes(config, bf16), 1e-6 * parameters);
        // The 7B headline (bf16, per-layer: 18.96 GiB measured) must not be refused by a two-copy bound of 25.1 GiB.
        Assert.Equal(2 * parameters, MemoryPlan.MinimumHostBytes(config, bf16 with { PerLayer = true }), 1e-6 * parameters);
        Assert.Equal(4 * parameters, MemoryPlan.MinimumHostBytes(config, new TrainingOptions { Model = "llama_7b", Device = "cuda" }), 1e-6 * parameters);
    }

    [Theory]
    [InlineData("24GB", 24_000_000_000)]
    [InlineData("22GiB", 22L << 30)]
    [InlineData("512MiB", 512L << 20)]
    [InlineData("1.5GB", 1_500_000_000)]
    [InlineData("4096", 4096)]
    public void MemoryBudget_Parses(string text, long bytes) => Assert.Equal(bytes, MemoryPlan.ParseBytes(text));

    [Theory]
    [InlineData("")]
    [InlineData("lots")]
    [InlineData("-3GB")]
    public void MemoryBudget_RefusesNonsense(string text) => Assert.Throws<ArgumentException>(() => MemoryPlan.ParseBytes(text));

    [Fact]
    public void Alternatives_FitTheBudget_AndNameTheChange()
    {
        var options = new TrainingOptions { Model = "llama_20m", Seq = 256, Batch = 4 };
        var plan = MemoryPlan.Predict(options);
        long budget = plan.PredictedPeakBytes - plan.AtPeak.Gradients / 2;
        var alternatives = MemoryPlan.Alternatives(options, budget);
        Assert.NotEmpty(alternatives);
        Assert.All(alternatives, a => Assert.True(a.Plan.PredictedPeakBytes <= budget, a.Change));
        Assert.Contains(alternatives, a => a.Change == "--per-layer");
    }
}

/// <summary>Running out of memory mid-run: reported with the step and the category that grew; checkpoints survive.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class OutOfMemoryTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-oom-").FullName;

    public void Dispose()
    {
        Backend.Cpu.Memory.LimitBytes = null;
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public void OutOfMemory_NamesTheStepAndTheCategory_AndKeepsTheLastCheckpoint()
    {
        var options = new TrainingOptions
        {
            Model = "tiny", Seq = 32, Batch = 4, Steps = 6, Warmup = 1, EvalEvery = 100, EvalBatches = 1, CheckpointEvery = 2,
            SyntheticBytes = 20_000, LogEvery = 1,
        };
        var dir = Path.Combine(_root, "run");
        var trainer = Trainer.Create(options, dir);
        var ledger = Backend.Cpu.Memory;
        // After step 2 (and its checkpoint), allow only a little more than what lives between steps.
        trainer.Progress += p => { if (p.Step == 2) ledger.LimitBytes = ledger.LiveBytes + (64 << 10); };
        var e = Assert.Throws<TensorLiteException>(() => trainer.Run());
        ledger.LimitBytes = null;
        Assert.StartsWith("Out of memory at step 3: activations grew by", e.Message);
        Assert.Contains("step-0000002 is kept", e.Message);
        Assert.EndsWith("step-0000002", Checkpoints.Latest(dir));
        var resumed = Trainer.Resume(dir);
        Assert.Equal(2, resumed.StartStep);
    }

    [Fact]
    public void LedgerLimit_RefusesBeforeAllocating()
    {
        var meta = new MetaBackend();
        meta.Memory.LimitBytes = 100;
        using (Backend.Use(meta))
        {
            using var ok = Tensor.Empty([20]);
            Assert.Throws<OutOfMemoryException>(() => Tensor.Empty([10]));
            Assert.Equal(80, meta.Memory.LiveBytes);
        }
    }
}

/// <summary>bf16 weights with float32 master copies.</summary>
public sealed class MasterWeightTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-master-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData("adamw")]
    [InlineData("galore")]
    public void MasterWeights_KeepUpdatesSmallerThanHalfABf16Ulp(string optimizer)
    {
        // A weight of 1 has a bf16 ulp of 2^-7; steps of ~1e-4 vanish when rounded into bf16 directly but add up in the
        // float32 master, which the parameter then follows.
        static (float[] Param, float[]? Master) Train(bool masters, string optimizer)
        {
            var w = Tensor.Ones([4, 8], DType.BFloat16).RequireGrad().Persist();
            var named = new[] { ("w", w) };
            TensorLite.Optim.Optimizer opt = optimizer == "adamw"
                ? new TensorLite.Optim.AdamW([w], learningRate: 1e-4f, weightDecay: 0f)
                : new TensorLite.Optim.Projected.ProjectedOptimizer(named,
                    TensorLite.Optim.Projected.ProjectedOptions.GaLore(rank: 2, updateGap: 100, scale: 1f, learningRate: 1e-4f));
            if (masters) opt.EnableMasterWeights();
            var gen = new Generator(3);
            for (int step = 0; step < 200; step++)
            {
                using var scope = TensorScope.Enter();
                w.Grad = Tensor.RandN([4, 8], gen).Affine(0.1f, 1f).To(DType.BFloat16).Persist(); // mostly positive
                opt.Step();
                w.ZeroGrad();
            }
            var master = opt.StateTensors().FirstOrDefault(x => x.Name == "master.0").Tensor;
            return (w.ToArray(), master?.ToArray());
        }
        var (plain, noMaster) = Train(false, optimizer);
        var (followed, master) = Train(true, optimizer);
        Assert.Null(noMaster);
        Assert.All(plain, v => Assert.Equal(1f, v));                                  // every update rounded away
        Assert.All(master!, v => Assert.InRange(v, 0.95f, 0.9999f));                  // ~200 × 1e-4 accumulated
        for (int i = 0; i < master!.Length; i++)
            Assert.Equal(RoundToBf16(master[i]), followed[i]);
    }

    private static float RoundToBf16(float x)
    {
        using var t = Tensor.FromArray([x], 1);
        using var b = t.To(DType.BFloat16);
        return b.ToArray()[0];
    }

    [Fact]
    public void MasterWeights_ResumeBitwise_AndAreCountedAsWeights()
    {
        var options = new TrainingOptions
        {
            Model = "tiny", Seq = 16, Batch = 2, Steps = 4, Warmup = 1, EvalEvery = 100, EvalBatches = 1, CheckpointEvery = 2,
            SyntheticBytes = 20_000, Weights = "bf16", MasterWeights = true, Optimizer = "galore", Rank = 8, UpdateGap = 2,
        };
        var straight = PerLayerUpdateTests.AssertResumeAtStep2IsBitwise(options, _root);
        long bf16 = straight.Model.Parameters().Sum(p => 2L * p.Numel);
        var plan = MemoryPlan.Predict(options);
        Assert.Equal(bf16 * 3, plan.AtPeak.Weights); // bf16 weights + float32 masters
    }
}
