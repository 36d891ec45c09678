using System.Diagnostics;
using System.Text.Json;
using TensorLite.Autograd;
using TensorLite.Data;
using TensorLite.Distributed;
using TensorLite.IO;
using TensorLite.Memory;
using TensorLite.Models;
using TensorLite.Optim;
using TensorLite.Optim.Projected;

namespace TensorLite.Training;

/// <summary>The numbers reported after every logged step.</summary>
public sealed record TrainProgress(
    long Step, long TotalSteps, float Loss, float? ValidationLoss, double TokensPerSecond, float LearningRate,
    double GradNorm, TimeSpan Elapsed, TimeSpan Remaining, long TensorBytes, long PeakTensorBytes, long ProcessBytes,
    MemoryBreakdown Memory, MemoryBreakdown MemoryAtPeak, long? DeviceReservedBytes = null)
{
    /// <summary>With --offload: bytes moved between device and host in the step (both directions).</summary>
    public long? OffloadBytes { get; init; }
    /// <summary>With --offload: seconds of host updates in the step.</summary>
    public double? OffloadHostSeconds { get; init; }
    /// <summary>With --offload: seconds the device waited for host updates in the step.</summary>
    public double? OffloadWaitSeconds { get; init; }
}

/// <summary>Training stopped because a value became NaN or infinite; the message names the step and the tensor.</summary>
public sealed class TrainingDivergedException(string message) : TensorLiteException(message);

/// <summary>
/// Trains a LLaMA on a token corpus with dense AdamW, warm-up + cosine learning rate, global-norm
/// clipping and gradient accumulation, writing a run folder (config.json, train.json, metrics.jsonl,
/// checkpoints). Seeded and deterministic: resuming from a checkpoint continues bit for bit.
/// </summary>
public sealed partial class Trainer : IDisposable
{
    /// <summary>The run folder's lock while this trainer may write it (released when <see cref="Run"/> ends or on
    /// <see cref="Dispose"/>); null for trainers that only read (eval, generate, planning).</summary>
    private RunLock? _lock;

    private readonly List<(string Name, Tensor Parameter)> _named;
    private readonly Generator _dataRng;
    private long _tokensSeen;
    // Per-layer updates: armed during the last micro-batch's backward; the hooks step each parameter and sum the
    // squared gradient norms. Clipping uses the previous step's global norm (the current one is only known once
    // every parameter has already been updated).
    private bool _stepInBackward;
    private double _sumOfSquares;
    private float _clipScale = 1f;
    private double? _lastGradNorm;
    private long _currentStep;

    private Trainer(IBackend device, TrainingOptions options, string runDir, LlamaModel model, Optimizer optimizer, TrainingData data,
        long startStep, Generator dataRng, long tokensSeen, double? lastGradNorm = null)
    {
        Device = device;
        _lastGradNorm = lastGradNorm;
        _tokensSeen = tokensSeen;
        Options = options;
        RunDir = runDir;
        Model = model;
        Optimizer = optimizer;
        Data = data;
        StartStep = startStep;
        _dataRng = dataRng;
        _named = model.NamedParameters().ToList();
        _factored = options.FactoredGradients ? CaptureFactoredGradients() : null;
        if (options.PerLayer || _factored != null) InstallGradientHooks();
        DeferUpdatesNearTheInput();
    }

    /// <summary>The projected optimizer when some of its parameters take factored gradients, else null.</summary>
    private ProjectedOptimizer? _factored;

    /// <summary>Marks every parameter the projected optimizer can update from factors (projected matrices without a
    /// residual rule) to capture its gradient as factors; returns the optimizer when any does.</summary>
    private ProjectedOptimizer? CaptureFactoredGradients()
    {
        if (Optimizer is not ProjectedOptimizer projected) return null;
        bool any = false;
        for (int i = 0; i < _named.Count; i++)
        {
            bool capture = projected.TakesFactoredGradient(i);
            _named[i].Parameter.CaptureFactoredGradient = capture;
            any |= capture;
        }
        return any ? projected : null;
    }

    /// <summary>The processes of a data-parallel run (<see cref="SingleProcess"/> for one): each takes GradAccum / WorldSize
    /// of every step's micro-batches, gradients are summed across them before the update, and rank 0 alone writes the
    /// run folder.</summary>
    public ICommunicator World { get; private set; } = SingleProcess.Instance;

    /// <summary>The backend the model, its optimizer state and every batch live on.</summary>
    public IBackend Device { get; }

    /// <summary>Which device runs and, for --device auto, why (shown when the run starts).</summary>
    public string DeviceNote { get; private init; } = "";

    /// <summary>The ledger of the backend the model lives on.</summary>
    public MemoryLedger Memory => Model.EmbedTokens.Backend.Memory;

    /// <summary>The run's options (as train.json records them).</summary>
    public TrainingOptions Options { get; }
    /// <summary>The run folder.</summary>
    public string RunDir { get; }
    /// <summary>The model being trained, on the run's device.</summary>
    public LlamaModel Model { get; }
    /// <summary>Dense AdamW, the projected optimizer or LoRA, as the options name it.</summary>
    public Optimizer Optimizer { get; }
    /// <summary>The tokenized training and validation streams.</summary>
    public TrainingData Data { get; }
    /// <summary>The step the run starts from: 0, or the resumed checkpoint's.</summary>
    public long StartStep { get; }

    /// <summary>Optimizer state bytes once every parameter has been stepped (the closed form of each method).</summary>
    public long PredictedOptimizerStateBytes => Optimizer switch
    {
        ProjectedOptimizer p => ProjectedOptimizer.PredictStateBytes(Model.NamedParameters().Select(x => (x.Name, x.Parameter.ShapeArray)), p.Options),
        Optim.Lora.LoraOptimizer l => Optim.Lora.LoraOptimizer.PredictStateBytes(Model.NamedParameters().Select(x => (x.Name, x.Parameter.ShapeArray)), l.Options),
        _ => ProjectedOptimizer.AdamWStateBytes(Model.Parameters().Select(x => x.ShapeArray)),
    };
    /// <summary>The latest validation loss (nats per token); null before the first evaluation.</summary>
    public float? LastValidationLoss { get; private set; }

    /// <summary>Called after every logged step and evaluation.</summary>
    public event Action<TrainProgress>? Progress;

    /// <summary>The tokenizer a --tokenizer value names: byte, cl100k, o200k or a tokenizer.json path.</summary>
    public static ITokenizer CreateTokenizer(string name) => name switch
    {
        "byte" => ByteTokenizer.Instance,
        "cl100k" => TiktokenTokenizer.Cl100k(),
        "o200k" => TiktokenTokenizer.O200k(),
        _ when HfTokenizer.IsTokenizerPath(name) => HfTokenizer.Load(name),
        _ => throw new TensorLiteException($"Unknown tokenizer '{name}'; available: byte, cl100k, o200k, or a tokenizer.json path."),
    };

    /// <summary>Releases the run folder's lock (a trainer that was created or resumed but not run).</summary>
    public void Dispose()
    {
        Offload?.Dispose();
        _sums?.Dispose(); // after a failed step, waits for the sums in flight (the other ranks complete them)
        _lock?.Dispose();
        _lock = null;
    }

    /// <summary>The config a --model value names: a preset name or a config.json path.</summary>
    public static LlamaConfig ResolveModel(string model) =>
        model.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || File.Exists(model) ? LlamaConfig.Load(model) : LlamaConfig.FromName(model);

    /// <summary>Starts a new run in an empty (or new) folder; refuses to touch an existing run.</summary>
    public static Trainer Create(TrainingOptions options, string runDir, ICommunicator? world = null) =>
        OnEveryRank(world, options, () => CreateAlone(options, runDir), () => OpenCore(runDir, null, null, allowNoCheckpoint: true, world));

    private static Trainer CreateAlone(TrainingOptions options, string runDir)
    {
        options.Validate();
        if (File.Exists(Path.Combine(runDir, "train.json")))
            throw new TensorLiteException($"'{runDir}' already holds a run; continue it with --resume {runDir} or choose another --out.");
        var (config, tokenizer) = ResolveConfig(options);
        CheckRank(config, options);
        CheckDeferLayers(config, options);
        MemoryPlan.RequireHostMemory(config, options);
        // Everything that can fail on bad input (data, model, optimizer options) happens before the folder is
        // touched, so a refused run leaves nothing behind.
        var data = TrainingData.Build(options, tokenizer, runDir);
        data.Dataset.RequireWindows(options.Seq);
        var device = Devices.Resolve(options.Device, out string deviceNote);
        LlamaModel model;
        Optimizer optimizer;
        using (Backend.Use(device))
        {
            model = NewModel(config, options);
            optimizer = NewOptimizer(model, options);
        }
        ReleaseInitializationMemory(device);
        options = RunFolder.WithAbsolutePaths(options); // train.json must not depend on the working directory
        Directory.CreateDirectory(runDir);
        var runLock = RunLock.Acquire(runDir);
        try
        {
            if (File.Exists(Path.Combine(runDir, "train.json")))
                throw new TensorLiteException($"'{runDir}' already holds a run; continue it with --resume {runDir} or choose another --out.");
            Checkpoints.CleanTemporaries(runDir);
            AtomicFile.Write(Path.Combine(runDir, "config.json"), s => s.Write(System.Text.Encoding.UTF8.GetBytes(config.ToJson())));
            AtomicFile.Write(Path.Combine(runDir, "train.json"), s => s.Write(System.Text.Encoding.UTF8.GetBytes(options.ToJson())));
            File.Delete(Path.Combine(runDir, MetricsLog.FileName));
            RunFolder.Complete(runDir, options, data);
        }
        catch
        {
            runLock.Dispose();
            throw;
        }
        return new Trainer(device, options, runDir, model, optimizer, data, 0, new Generator(options.Seed ^ 0xDA7A), 0) { DeviceNote = deviceNote, _lock = runLock };
    }

    /// <summary>Returns what building the model and loading its checkpoint left behind (cached blocks of the
    /// temporaries, the managed heap's free space) to the system, so the run's resident memory starts from the weights.</summary>
    private static void ReleaseInitializationMemory(IBackend device)
    {
        Backend.Cpu.TrimCache(); // host tensors (checkpoint loading, batches) come from the CPU pool on every device
        if (device != Backend.Cpu) device.TrimCache();
        System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    /// <summary>The model config a run of <paramref name="options"/> trains, and its tokenizer.</summary>
    public static (LlamaConfig Config, ITokenizer Tokenizer) ResolveConfig(TrainingOptions options)
    {
        var config = options.InitFrom != null ? HfModelFolder.ReadConfig(options.InitFrom) : ResolveModel(options.Model);
        var tokenizer = CreateTokenizer(options.Tokenizer);
        // A named size fixes the architecture; its vocabulary grows to fit the tokenizer. An explicit config.json is taken
        // as written (and refused below if its vocabulary is too small).
        if (config.VocabSize < tokenizer.VocabSize && options.InitFrom == null && LlamaConfig.Named.ContainsKey(options.Model)) config = config with { VocabSize = tokenizer.VocabSize };
        CheckCompatible(config, tokenizer, options);
        return (config, tokenizer);
    }

    /// <summary>What a run's options ask of its model: every token id has an embedding row, every position a rotary
    /// angle, and the logits of a micro-batch fit one tensor.</summary>
    private static void CheckCompatible(LlamaConfig config, ITokenizer tokenizer, TrainingOptions options)
    {
        if (config.VocabSize < tokenizer.VocabSize)
            throw new TensorLiteException($"The model's vocab_size {config.VocabSize} is smaller than the {options.Tokenizer} tokenizer's {tokenizer.VocabSize}.");
        if (options.Seq > config.MaxPositionEmbeddings)
            throw new TensorLiteException($"--seq {options.Seq} exceeds the model's max_position_embeddings {config.MaxPositionEmbeddings}.");
        long logits = (long)options.Batch * options.Seq * config.VocabSize;
        if (logits > int.MaxValue)
            throw new TensorLiteException($"--batch {options.Batch} × --seq {options.Seq} × vocab_size {config.VocabSize} is {logits:N0} logits, over a tensor's {int.MaxValue:N0} elements; lower --batch (and raise --grad-accum) or --seq.");
    }

    /// <summary>A projection rank must fit at least one matrix it projects (each matrix's rank is capped at its smaller
    /// side; a rank above all of them is a mistake, not a request). Checked when a run starts or resumes; the planner
    /// keeps the cap so its suggestions work for every model size.</summary>
    private static void CheckRank(LlamaConfig config, TrainingOptions options)
    {
        if (options.Optimizer is "galore" or "osd" or "grass" && options.Rank > config.HiddenSize)
            throw new TensorLiteException($"--rank {options.Rank} is larger than every projected matrix of this model (the largest rank any of them can take is hidden_size {config.HiddenSize}); " +
                                          "each matrix's rank is capped at its smaller side, so give at most that.");
    }

    /// <summary>
    /// A trainer with no run folder whose uninitialized model, optimizer and data are created on the current default
    /// backend; the memory planner runs <see cref="RunPlanningSteps"/> on it on the meta backend.
    /// </summary>
    internal static Trainer ForPlanning(TrainingOptions options, LlamaConfig config, int processes = 1)
    {
        var model = NewModel(config, options, initialize: false);
        var optimizer = NewOptimizer(model, options);
        var data = new TrainingData(new TokenDataset(new int[20 * (options.Seq + 1)], config.VocabSize), "planning", 0, null);
        var trainer = new Trainer(Backend.Default, options, "", model, optimizer, data, 0, new Generator(0), 0);
        // The plan of a data-parallel run is rank 0's: all weights and gradients, its share of the optimizer state.
        trainer.StartShards(processes);
        trainer._planOfRanks = processes > 1;
        return trainer;
    }

    /// <summary>Runs training steps exactly as <see cref="Run"/> does, without evaluation, metrics or checkpoints.</summary>
    internal void RunPlanningSteps(int steps)
    {
        for (int step = 0; step < steps; step++) TrainStep(step, Options.PeakLearningRate);
    }

    /// <summary>Continues a run from its newest checkpoint (or, killed before its first checkpoint, from the start);
    /// <paramref name="steps"/> may extend the total and <paramref name="deviceName"/> move it to another device
    /// (checkpoints do not depend on where they were written). Either one given is written to the run's train.json.
    /// Holds the run folder's lock until <see cref="Run"/> ends: under it, what interrupted writes left behind is
    /// removed and metrics.jsonl is cut back to whole records up to the checkpoint. With
    /// <paramref name="refuseFinished"/>, a run that has no steps left is refused before anything is written.</summary>
    public static Trainer Resume(string runDir, int? steps = null, string? deviceName = null, bool refuseFinished = false, ICommunicator? world = null) =>
        OnEveryRank(world, world == null ? null : ReadOptions(runDir, steps, deviceName),
            () => ResumeAlone(runDir, steps, deviceName, refuseFinished, world), () => OpenCore(runDir, steps, deviceName, allowNoCheckpoint: true, world));

    /// <summary>
    /// Starts a trainer on every rank of <paramref name="world"/>: rank 0 runs <paramref name="leader"/> (which creates or
    /// repairs the run folder under its lock), then tells the others whether it succeeded; they then open the folder
    /// read-only with <paramref name="follower"/>, so every rank starts from the same weights, optimizer state and data
    /// position. A rank-0 failure makes the others fail too instead of waiting for it.
    /// </summary>
    private static Trainer OnEveryRank(ICommunicator? world, TrainingOptions? options, Func<Trainer> leader, Func<Trainer> follower)
    {
        if (world == null || world.WorldSize == 1) return leader();
        if (options!.GradAccum % world.WorldSize != 0)
            throw new TensorLiteException($"--grad-accum {options.GradAccum} must be a multiple of the {world.WorldSize} processes: " +
                                          "each process takes an equal share of every step's micro-batches.");
        Trainer? trainer = null;
        Span<byte> started = [0];
        try
        {
            if (world.Rank == 0) trainer = leader();
            started[0] = 1;
        }
        finally
        {
            if (world.Rank == 0) world.Broadcast(started, 0);
        }
        if (world.Rank != 0)
        {
            world.Broadcast(started, 0);
            if (started[0] == 0) throw new TensorLiteException("Rank 0 could not start the run (its error is printed by rank 0).");
            trainer = follower();
        }
        trainer!.World = new TimedCommunicator(world);
        trainer.StartShards(world.WorldSize);
        trainer.StartGradientSums();
        return trainer;
    }

    private static Trainer ResumeAlone(string runDir, int? steps, string? deviceName, bool refuseFinished, ICommunicator? world)
    {
        RequireRunFolder(runDir);
        var runLock = RunLock.Acquire(runDir);
        try
        {
            var trainer = OpenCore(runDir, steps, deviceName, allowNoCheckpoint: true, world);
            if (refuseFinished && trainer.StartStep >= trainer.Options.Steps)
                throw new TensorLiteException($"The run in '{runDir}' is already complete (step {trainer.StartStep} of {trainer.Options.Steps}); " +
                                              "give a larger --steps to continue it.");
            Checkpoints.CleanTemporaries(runDir);
            MetricsLog.Repair(Path.Combine(runDir, MetricsLog.FileName), trainer.StartStep);
            // The folder records what the run now continues with, so a later --resume, eval or generate without these
            // options keeps the new step total and device.
            if (steps != null || deviceName != null)
                AtomicFile.Write(Path.Combine(runDir, "train.json"), s => s.Write(System.Text.Encoding.UTF8.GetBytes(trainer.Options.ToJson())));
            RunFolder.Complete(runDir, trainer.Options, trainer.Data);
            trainer._lock = runLock;
            return trainer;
        }
        catch
        {
            runLock.Dispose();
            throw;
        }
    }

    /// <summary>Loads a run's newest checkpoint without changing anything in its folder (for eval and generate); refuses
    /// a checkpoint whose weights or optimizer state are not finite.</summary>
    public static Trainer Open(string runDir, int? steps = null, string? deviceName = null)
    {
        RequireRunFolder(runDir);
        return OpenCore(runDir, steps, deviceName, allowNoCheckpoint: false);
    }

    private const long MaxRunJsonBytes = 1 << 20;

    private static void RequireRunFolder(string runDir)
    {
        if (!File.Exists(Path.Combine(runDir, "train.json")) && new FileInfo(Path.Combine(runDir, "train.json")).LinkTarget == null)
            throw new TensorLiteException($"'{runDir}' is not a run folder (no train.json).");
    }

    /// <summary>The options a run folder's train.json holds, with an explicit step total and device applied, validated.</summary>
    public static TrainingOptions ReadOptions(string runDir, int? steps = null, string? deviceName = null)
    {
        RequireRunFolder(runDir);
        string trainJson = Path.Combine(runDir, "train.json");
        var options = TrainingOptions.FromJson(SafeFile.ReadAllText(trainJson, "Training options file", MaxRunJsonBytes, allowSymlink: false), trainJson);
        if (steps is int s) options = options with { Steps = s };
        if (deviceName != null) options = options with { Device = deviceName };
        try
        {
            return options.Validate();
        }
        catch (ArgumentException e) when (steps == null && deviceName == null)
        {
            throw new TensorLiteException($"{trainJson}: {e.Message}");
        }
    }

    private static Trainer OpenCore(string runDir, int? steps, string? deviceName, bool allowNoCheckpoint, ICommunicator? world = null)
    {
        var options = ReadOptions(runDir, steps, deviceName);
        string configPath = Path.Combine(runDir, "config.json");
        if (!File.Exists(configPath) && new FileInfo(configPath).LinkTarget == null) throw new TensorLiteException($"'{runDir}' is not a run folder (no config.json).");
        var config = LlamaConfig.FromJson(SafeFile.ReadAllText(configPath, "Model config", MaxRunJsonBytes, allowSymlink: false), configPath);
        var tokenizer = RunFolder.OpenTokenizer(runDir, options.Tokenizer);
        CheckCompatible(config, tokenizer, options);
        CheckRank(config, options);
        // What train checks before it allocates, eval and resume check too: a run folder's config may name any size.
        MemoryPlan.RequireHostMemory(config, options);
        string? checkpoint = Checkpoints.Latest(runDir);
        if (checkpoint == null && !allowNoCheckpoint) throw new TensorLiteException($"'{runDir}' has no checkpoint yet.");
        var data = TrainingData.Open(options, tokenizer, runDir);
        data.Dataset.RequireWindows(options.Seq);
        var expectedState = checkpoint == null ? null : ExpectedOptimizerState(options, config);
        var device = Devices.Resolve(options.Device, out string deviceNote);
        LlamaModel model;
        Optimizer optimizer;
        TrainingState? state = null;
        using (Backend.Use(device))
        {
            // The checkpoint replaces the --init-from weights: that folder is only read before the first checkpoint.
            model = NewModel(config, checkpoint == null ? RunFolder.RequireInitFrom(runDir, options) : options with { InitFrom = null });
            optimizer = NewOptimizer(model, options);
            // A sharded rank loads the optimizer state of its own parameters only.
            if (checkpoint != null)
                state = Checkpoints.Load(checkpoint, model, optimizer, expectedState, ShardStateFilter(options, optimizer, world));
        }
        ReleaseInitializationMemory(device);
        if (state == null) // killed before its first checkpoint: the run starts again, exactly as it first did
            return new Trainer(device, options, runDir, model, optimizer, data, 0, new Generator(options.Seed ^ 0xDA7A), 0) { DeviceNote = deviceNote };
        var rng = new Generator(0);
        rng.SetState(state.DataRngState);
        return new Trainer(device, options, runDir, model, optimizer, data, state.Step, rng, state.TokensSeen, state.LastGradNorm) { DeviceNote = deviceNote };
    }

    /// <summary>The names of the optimizer's state tensors once it has taken a step (every checkpoint is written after at
    /// least one): found by taking that step on the meta backend, which allocates and computes nothing.</summary>
    private static HashSet<string> ExpectedOptimizerState(TrainingOptions options, LlamaConfig config)
    {
        var meta = new TensorLite.Backends.Meta.MetaBackend();
        using (Backend.Use(meta))
        {
            var trainer = ForPlanning(options, config);
            trainer.RunPlanningSteps(1);
            return trainer.Optimizer.StateTensors().Select(x => x.Name).ToHashSet(StringComparer.Ordinal);
        }
    }

    internal static LlamaModel NewModel(LlamaConfig config, TrainingOptions options, bool initialize = true)
    {
        bool fromCheckpoint = initialize && options.InitFrom != null; // fine-tuning: the folder's weights, not random ones
        var model = new LlamaModel(config, initialize && !fromCheckpoint ? new Generator(options.Seed) : null, options.WeightDType)
        {
            CheckpointLayers = options.CheckpointLayers,
            ActivationDType = options.ActivationDType,
        };
        if (fromCheckpoint) HfModelFolder.LoadWeights(model, options.InitFrom!);
        return model;
    }

    /// <summary>Dense AdamW, or the one composition (projector × inner optimizer × residual rule): a projected method
    /// whose attention and MLP matrices are projected while the embedding, norms and LM head get the inner optimizer
    /// densely, or — for adamw with 8-bit or factored states — the identity projection with that inner optimizer.</summary>
    internal static Optimizer NewOptimizer(LlamaModel model, TrainingOptions o)
    {
        var optimizer = NewOptimizerOf(model, o);
        optimizer.StochasticRoundingSeed = o.StochasticRounding ? o.Seed ^ 0x5EED_0F_B16UL : null;
        if (o.MasterWeights) optimizer.EnableMasterWeights();
        return optimizer;
    }

    private static Optimizer NewOptimizerOf(LlamaModel model, TrainingOptions o) => o.Offload == "none"
        ? o.ToOptimizerSpec().Create(model.NamedParameters(), o.WeightDType)
        : Optim.Offload.OffloadedOptimizer.Create(o.ToOptimizerSpec(), model.NamedParameters(), o.WeightDType, NewOffloadEngine(o));

    /// <summary>The host side of an offloaded run: the CPU backend, or in a plan (on the meta backend) a meta backend of
    /// its own, so the plan counts host memory apart from the device's; a plan runs serially (no worker thread).</summary>
    private static Optim.Offload.OffloadEngine NewOffloadEngine(TrainingOptions o) => Backend.Default is TensorLite.Backends.Meta.MetaBackend
        ? new(new TensorLite.Backends.Meta.MetaBackend(), overlap: false)
        : new(Backend.Cpu, overlap: o.OffloadSchedule is "overlap" or "deferred");

    /// <summary>The offload engine of a run with --offload (its host updates, bytes moved and timeline), else null.</summary>
    public Optim.Offload.OffloadEngine? Offload => (Optimizer as ProjectedOptimizer)?.Offload;

    /// <summary>The optimizer is built over the model's parameters in NamedParameters order, so parameter i of the
    /// optimizer is _named[i]. Each hook steps the parameter during the last micro-batch's backward (per-layer updates)
    /// or, between steps, folds a factored gradient into the projected space so its factors are freed at once.</summary>
    private void InstallGradientHooks()
    {
        var parameters = Optimizer.Parameters;
        _hooksInstalled = true;
        for (int i = 0; i < parameters.Count; i++)
        {
            if (!ReferenceEquals(parameters[i], _named[i].Parameter))
                throw new InvalidOperationException("The optimizer's parameters are not the model's, in order.");
            int index = i;
            parameters[i].RegisterGradHook(_ => OnGradient(index));
        }
    }

    /// <summary>Turns factored gradients off: every parameter gets its dense gradient again.</summary>
    private void TakeDenseGradients()
    {
        foreach (var (_, p) in _named) p.CaptureFactoredGradient = false;
        _factored = null;
    }

    /// <summary>What a data-parallel step sums, for the run's header: projected gradients where the factored path takes
    /// them, and on a GPU device whether the sums stay on the device (NCCL) or are staged through host memory (MPI).</summary>
    public string AllReduceSummary =>
        (_factored != null ? "projected gradients between refreshes, dense ones on refresh steps and for dense parameters" : "dense gradients") + ShardSummary +
        (Device is IDeviceAllocator ? (World.CollectivesDevice == Device ? ", on the device (NCCL)" : ", through host memory (MPI)") : "") + GradientSumSchedule;

    /// <summary>The bytes a data-parallel step all-reduces for gradients (float32 on the wire) at the parameters' 0-based
    /// step <paramref name="step"/> (valid after the first step; see <see cref="ProjectedOptimizer.AllReducedElements"/>).</summary>
    internal long AllReducedGradientBytes(long step) => sizeof(float) * Enumerable.Range(0, Optimizer.Parameters.Count)
        .Where(i => Optimizer.Parameters[i].RequiresGrad)
        .Sum(i => _factored != null ? _factored.AllReducedElements(i, step) : Optimizer.Parameters[i].Numel);

    private void OnGradient(int index)
    {
        if (_stepInBackward) StepInBackward(index);
        else
        {
            _factored?.Fold(index, _lastMicroBatch);
            SumWhenReady(index);
        }
    }

    /// <summary>Whether the backward running is the step's last micro-batch.</summary>
    private bool _lastMicroBatch;

    private void StepInBackward(int index)
    {
        var (name, p) = _named[index];
        if (!_stepInBackward || !p.HasGradient) return;
        if ((World.WorldSize > 1 || _planOfRanks) && GradientToSum(index) is { } gradient) World.AllReduceSum(gradient);
        NoteSharedRefresh(index);
        if (p.FactoredGrad is { } factors)
        {
            // The norm a factored parameter reports is its projected gradient's (known once it is stepped); the
            // NaN/Inf check reads the factors before the update.
            if (!factors.FactorsAreFinite()) throw Diverged(_currentStep, $"the gradient of {name} is not finite");
            if (_clipScale < 1f) factors.Scale *= _clipScale;
            double projectedNorm = Owns(index) ? StepFactored(index) : _factored!.FollowFactoredStep(index);
            _sumOfSquares += projectedNorm * projectedNorm;
            if (_shards != null) World.Broadcast([p], _shards.Owner(index));
            p.ZeroGrad();
            return;
        }
        double norm = GradientClipping.GlobalNorm([p]);
        if (!double.IsFinite(norm)) throw Diverged(_currentStep, $"the gradient of {name} is not finite");
        _sumOfSquares += norm * norm;
        if (_clipScale < 1f) p.Backend.Unary(UnaryOp.Affine, p.Grad!, p.Grad!, _clipScale, 0f);
        if (Owns(index)) Optimizer.StepParameter(index);
        else FollowStep(index);
        if (_shards != null) World.Broadcast([p], _shards.Owner(index));
        p.ZeroGrad();
    }

    /// <summary>Steps a parameter from its factored gradient; returns the norm of its projected gradient.</summary>
    private double StepFactored(int index)
    {
        Optimizer.StepParameter(index);
        return _factored!.FactoredGradNorm(index);
    }

    /// <summary>Runs from the start step to Options.Steps; returns the final validation loss.</summary>
    public float Run(CancellationToken cancel = default)
    {
        try
        {
            return RunSteps(cancel);
        }
        finally
        {
            Dispose(); // the run is over: another process may now resume it
        }
    }

    private float RunSteps(CancellationToken cancel)
    {
        var o = Options;
        var clock = Stopwatch.StartNew();
        long tokensPerStep = (long)o.Batch * o.Seq * o.GradAccum;
        bool writes = World.Rank == 0; // the other ranks of a data-parallel run compute the same step and write nothing
        using var metrics = writes ? WriteFailure(() => new MetricsLog.Writer(Path.Combine(RunDir, MetricsLog.FileName)), "metrics.jsonl") : null;
        float lastLoss = float.NaN;
        long step = StartStep;
        while (step < o.Steps && !cancel.IsCancellationRequested)
        {
            float lr = LrSchedule.WithRestartWarmups(step, o.LoraRestart ?? 0, o.ResolvedLoraRestartWarmup,
                s => LrSchedule.WarmupCosine(s, o.Steps, o.Warmup, o.PeakLearningRate, o.MinLrRatio));
            var before = Memory.Live;
            float loss;
            double norm;
            try
            {
                (loss, norm) = TrainStep(step, lr);
            }
            catch (OutOfMemoryException)
            {
                throw OutOfMemory(step, before);
            }
            step++;
            _tokensSeen += tokensPerStep;
            lastLoss = loss;
            float? val = null;
            bool checkpointNow = step % o.CheckpointEvery == 0 || step == o.Steps;
            // A sharded run's optimizer state is spread over the ranks: they all send theirs to rank 0 for the checkpoint.
            var gathered = checkpointNow && _shards != null ? _shards.GatherToRankZero(World, ShardStateTensors()) : null;
            if (!writes) continue;
            if (step % o.EvalEvery == 0 || step == o.Steps) val = LastValidationLoss = Evaluate(o.EvalBatches);
            if (step % o.LogEvery == 0 || val != null || step == StartStep + 1)
            {
                double tokensPerSecond = (step - StartStep) * tokensPerStep / clock.Elapsed.TotalSeconds;
                var remaining = TimeSpan.FromSeconds((o.Steps - step) * tokensPerStep / Math.Max(1, tokensPerSecond));
                var ledger = Memory;
                var allocator = Device as IDeviceAllocator;
                var progress = new TrainProgress(step, o.Steps, loss, val, tokensPerSecond, lr, norm, clock.Elapsed, remaining,
                    ledger.LiveBytes, ledger.PeakBytes, Environment.WorkingSet, ledger.Live, ledger.AtPeak, allocator?.ReservedBytes)
                {
                    OffloadBytes = Offload is { } engine ? engine.StepBytesToHost + engine.StepBytesToDevice : null,
                    OffloadHostSeconds = Offload?.StepHostSeconds, OffloadWaitSeconds = Offload?.StepWaitSeconds,
                };
                if (Offload is { } timeline) WriteFailure(() => { Optim.Offload.OffloadTimeline.Write(RunDir, step, timeline); return 0; }, Optim.Offload.OffloadTimeline.FileName);
                string record = JsonSerializer.Serialize(new
                {
                    step, loss, val_loss = val, lr, grad_norm = norm, tokens = _tokensSeen,
                    tokens_per_s = Math.Round(tokensPerSecond), tensor_bytes = progress.TensorBytes,
                    peak_tensor_bytes = progress.PeakTensorBytes, rss_bytes = progress.ProcessBytes,
                    peak_rss_bytes = ProcessMemory.PeakResidentBytes(), peak_pool_bytes = Backend.CpuPoolPeakBytes,
                    managed_heap_bytes = GC.GetGCMemoryInfo().TotalCommittedBytes,
                    collective_s = (World as TimedCommunicator)?.Elapsed.TotalSeconds,
                    allreduce_bytes = (World as TimedCommunicator)?.AllReducedBytes,
                    broadcast_bytes = (World as TimedCommunicator)?.BroadcastBytes,
                    allreduce_wait_s = _sums != null ? GradientSumWait.TotalSeconds : (double?)null,
                    allreduce_buckets = _sums?.BucketsSummed, allreduce_buckets_overlapped = _sums != null ? GradientBucketsOverlapped : (long?)null,
                    device = Device.Name, device_reserved_bytes = allocator?.ReservedBytes, peak_device_reserved_bytes = allocator?.PeakReservedBytes,
                    optimizer_state_bytes = Optimizer.StateBytes,
                    offload_bytes_to_host = Offload?.StepBytesToHost, offload_bytes_to_device = Offload?.StepBytesToDevice,
                    offload_host_s = Offload?.StepHostSeconds, offload_wait_s = Offload?.StepWaitSeconds,
                    // The host's tensors when they are not the device's (on the CPU the "memory" fields hold both).
                    offload_host_tensor_bytes = Offload is { } e && e.Host != Device ? e.Host.Memory.LiveBytes : (long?)null,
                    memory = Categories(progress.Memory), memory_at_peak = Categories(progress.MemoryAtPeak),
                });
                WriteFailure(() => { metrics!.Append(record); return 0; }, "metrics.jsonl");
                Progress?.Invoke(progress);
            }
            if (checkpointNow)
            {
                SaveCheckpoint(step, gathered);
                foreach (var (name, t) in gathered ?? []) if (!Owns(StateShards.ParameterOf(name))) t.Dispose(); // the other ranks' copies
            }
        }
        return LastValidationLoss ?? lastLoss;
    }

    /// <summary>Runs a write to the run folder; an IO failure (a full disk, a vanished folder) becomes one sentence that
    /// names the file, the system's reason and what is kept.</summary>
    private T WriteFailure<T>(Func<T> write, string what)
    {
        try
        {
            return write();
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            string? last = null;
            try { last = Checkpoints.Latest(RunDir); } catch (Exception) { /* reporting the write failure matters more */ }
            // Still an IOException with the system's error code, so callers can tell a full disk from other failures.
            throw new IOException($"Could not write {what} in '{RunDir}': {e.Message.TrimEnd('.')}; " +
                (last == null ? "no checkpoint was written yet" : $"the last good checkpoint {Path.GetFileName(last)} is kept") +
                (e.HResult == FaultPoints.NoSpaceHResult ? $". Free space and continue with --resume {RunDir}." : $". Continue with --resume {RunDir} once that is fixed."),
                e.HResult);
        }
    }

    private static Dictionary<string, long> Categories(MemoryBreakdown b) =>
        b.Items().ToDictionary(x => MemoryPlan.CategoryName(x.Category), x => x.Bytes);

    private TensorLiteException OutOfMemory(long step, MemoryBreakdown before)
    {
        var now = Memory.Live;
        var grew = now.Items().MaxBy(x => x.Bytes - before[x.Category]);
        string? last = Checkpoints.Latest(RunDir);
        return new TensorLiteException($"Out of memory at step {step + 1}: {MemoryPlan.CategoryName(grew.Category)} grew by " +
            $"{MemoryPlan.Format(grew.Bytes - before[grew.Category])} to {MemoryPlan.Format(grew.Bytes)} (all tensors {MemoryPlan.Format(now.Total)}); " +
            (last == null ? "no checkpoint was written yet." : $"the last good checkpoint {Path.GetFileName(last)} is kept.") +
            " Check the settings with `tensorlite plan` and --memory-budget.");
    }

    private (float Loss, double Norm) TrainStep(long step, float lr)
    {
        using var onDevice = Backend.Use(Device);
        var o = Options;
        float loss = 0;
        _currentStep = step;
        var offload = Offload;
        offload?.BeginStep();
        int perRank = o.GradAccum / World.WorldSize, lastOwned = (World.Rank + 1) * perRank - 1;
        for (int micro = 0; micro < o.GradAccum; micro++)
        {
            using var scope = TensorScope.Enter();
            // Every rank draws every micro-batch of the step, so the data stream is the single process's, and trains on
            // its own contiguous share of them.
            var (x, y) = Data.Dataset.SampleBatch(false, o.Batch, o.Seq, _dataRng, Device);
            if (micro / perRank != World.Rank) continue;
            bool stepNow = o.PerLayer && micro == lastOwned;
            if (stepNow)
            {
                Optimizer.LearningRate = lr;
                Optimizer.BeginStep();
                _clipScale = o.ClipNorm > 0 && _lastGradNorm is double prev && prev > o.ClipNorm ? (float)(o.ClipNorm / (prev + 1e-6)) : 1f;
                _sumOfSquares = 0;
            }
            _stepInBackward = stepNow;
            _lastMicroBatch = micro == lastOwned;
            double computeStart = offload?.StepSeconds ?? 0;
            var l = Model.Loss(x, y);
            float value = l.Item();
            if (!float.IsFinite(value))
                throw Diverged(step, $"the loss is {value}" + (GradientClipping.FirstNonFinite(_named, gradients: false) is string bad ? $" ({bad} is not finite)" : " (the logits overflowed)"));
            loss += value / o.GradAccum;
            try
            {
                if (o.GradAccum == 1)
                {
                    l.Backward();
                    continue;
                }
                using var scaled = l * (1f / o.GradAccum); // the mean over micro-batches
                scaled.Backward();
            }
            finally
            {
                _stepInBackward = false;
                offload?.Record($"micro-batch {micro + 1}", Optim.Offload.OffloadLane.DeviceCompute, computeStart, offload.StepSeconds);
            }
        }
        if (World.WorldSize > 1)
        {
            FaultPoints.Hit($"allreduce.rank{World.Rank}");
            if (_sums != null) SumGradients(); // first: the buckets in flight hold the communicator until then
            Span<double> total = [loss];
            World.AllReduceSum(total);
            loss = (float)total[0];
        }
        if (o.PerLayer)
        {
            // A parameter the last micro-batch did not reach still holds gradient from earlier ones: step it now, so
            // the result is the ordinary step's.
            var parameters = Optimizer.Parameters;
            for (int i = 0; i < parameters.Count; i++)
                if (parameters[i].HasGradient)
                {
                    _stepInBackward = true;
                    try { StepInBackward(i); }
                    finally { _stepInBackward = false; }
                }
            ShareRefreshedProjections();
            offload?.Drain(); // the device applies the host updates that overlapped the backward
            double stepNorm = Math.Sqrt(_sumOfSquares);
            _lastGradNorm = stepNorm;
            return (loss, stepNorm);
        }
        Optimizer.LearningRate = lr; // a refresh from the factors (OSD) follows the schedule
        if (World.WorldSize == 1 && _factored != null)
            for (int i = 0; i < _named.Count; i++)
                if (_planOfRanks) _factored.GradientToAllReduce(i); // the plan of a data-parallel run: what its ranks sum
                else _factored.PrepareFactored(i);
        double norm = GradientClipping.ClipGlobalNorm(Optimizer.Parameters, o.ClipNorm);
        if (!double.IsFinite(norm))
            throw Diverged(step, $"{GradientClipping.FirstNonFinite(_named, gradients: true) ?? "a gradient"} is not finite");
        if (_shards == null) Optimizer.Step();
        else StepShardedParameters();
        offload?.Drain();
        Optimizer.ZeroGrad();
        _lastGradNorm = norm;
        return (loss, norm);
    }

    private TrainingDivergedException Diverged(long step, string what)
    {
        string? last = Checkpoints.Latest(RunDir);
        return new TrainingDivergedException($"Training diverged at step {step + 1}: {what}; " +
            (last == null ? "no checkpoint was written yet." : $"the last good checkpoint {Path.GetFileName(last)} is kept.") + " Try a lower --lr.");
    }

    /// <summary>Mean validation loss over <paramref name="batches"/> random windows drawn from the run's seed: the same
    /// ones at every evaluation of a run, other ones for another seed (<see cref="EvaluateWholeSplit"/> covers the whole
    /// split).</summary>
    public float Evaluate(int batches)
    {
        FlushOffload(); // updates deferred into the next forward land before the weights are evaluated
        using var noGrad = GradMode.NoGrad();
        using var onDevice = Backend.Use(Device);
        var rng = new Generator(Options.Seed ^ 0xE7A1);
        double sum = 0;
        for (int i = 0; i < batches; i++)
        {
            using var scope = TensorScope.Enter();
            var (x, y) = Data.Dataset.SampleBatch(true, Options.Batch, Options.Seq, rng, Device);
            sum += Model.Loss(x, y).Item();
        }
        return (float)(sum / batches);
    }

    /// <summary>The mean loss per target over the whole validation split, in consecutive windows of the run's sequence
    /// length and batches of its batch size: deterministic, and the same tokens for every seed and method of a dataset
    /// (<see cref="Evaluate"/> samples random windows from the seed).</summary>
    public float EvaluateWholeSplit()
    {
        FlushOffload(); // as in Evaluate: deferred updates land before the weights are scored
        using var noGrad = GradMode.NoGrad();
        using var onDevice = Backend.Use(Device);
        var data = Data.Dataset;
        int windows = data.ValidationWindowCount(Options.Seq);
        double sum = 0;
        long targets = 0;
        for (int first = 0; first < windows; first += Options.Batch)
        {
            using var scope = TensorScope.Enter();
            var (x, y, n) = data.ValidationWindows(first, Math.Min(Options.Batch, windows - first), Options.Seq, Device);
            if (n == 0) continue; // every target of these windows is context
            sum += (double)Model.Loss(x, y).Item() * n;
            targets += n;
        }
        if (targets == 0) throw new TensorLiteException("The validation split has no target tokens (the mask marks every token as context).");
        return (float)(sum / targets);
    }

    /// <summary>This rank's entries of the optimizer state: those of the parameters it owns (a non-owner's master
    /// weights are stale copies).</summary>
    private List<(string Name, Tensor Tensor)> ShardStateTensors() =>
        Optimizer.StateTensors().Where(e => Owns(StateShards.ParameterOf(e.Name))).ToList();

    private void SaveCheckpoint(long step, List<(string Name, Tensor Tensor)>? optimizerState = null)
    {
        FlushOffload(); // the checkpoint holds fully updated weights and a host state at rest
        var state = new TrainingState { Step = step, DataRngState = _dataRng.GetState(), TokensSeen = _tokensSeen, LastGradNorm = _lastGradNorm };
        try
        {
            WriteFailure(() => Checkpoints.Save(RunDir, Model, Optimizer, state, Options.KeepCheckpoints, optimizerState), $"checkpoint step-{step:D7}");
        }
        catch (NonFiniteTensorException e)
        {
            // The update of this step made a weight (or a moment) NaN or infinite: it is not saved as a good checkpoint.
            throw Diverged(step - 1, $"{e.TensorName} is not finite after the update");
        }
    }
}
