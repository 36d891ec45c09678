using System.Text.Json;
using System.Text.Json.Serialization;
using TensorLite.Optim.Projected;

namespace TensorLite.Training;

/// <summary>Everything that defines a training run; saved as train.json in the run folder.</summary>
public sealed record TrainingOptions
{
    /// <summary>A named config (see LlamaConfig.Named) or a path to an HF config.json.</summary>
    public string Model { get; init; } = "byte_small";
    /// <summary>Text files to train on; empty means the embedded synthetic language.</summary>
    public string[] Data { get; init; } = [];
    /// <summary>byte, cl100k, o200k, or the path of an HF tokenizer.json (or of a folder holding one).</summary>
    public string Tokenizer { get; init; } = "byte";
    /// <summary>An HF model folder to fine-tune: its config.json replaces <see cref="Model"/> and its weights the random
    /// initialization (see Models.HfModelFolder).</summary>
    public string? InitFrom { get; init; }
    /// <summary>Tokens per sequence (the context length trained on).</summary>
    public int Seq { get; init; } = 128;
    /// <summary>Sequences per micro-batch.</summary>
    public int Batch { get; init; } = 16;
    /// <summary>Micro-batches per optimizer step (across every process of a data-parallel run).</summary>
    public int GradAccum { get; init; } = 1;
    /// <summary>Optimizer steps of the whole run (a resumed run continues up to this count).</summary>
    public int Steps { get; init; } = 300;
    // The optimizer's numbers: null takes the method's (ProjectedOptions.HyperParametersOf: the trainer's own for adamw —
    // 3e-3, 0.1, β 0.9/0.95, ε 1e-8 — and each paper's for the projected methods).

    /// <summary>Peak learning rate; null: the method's. The run uses <see cref="PeakLearningRate"/>.</summary>
    public float? LearningRate { get; init; }
    /// <summary>The cosine schedule ends at this fraction of the peak learning rate.</summary>
    public float MinLrRatio { get; init; } = 0.1f;
    /// <summary>Steps of linear warm-up to the peak learning rate.</summary>
    public int Warmup { get; init; } = 30;
    /// <summary>Decoupled weight decay; null: the method's.</summary>
    public float? WeightDecay { get; init; }
    /// <summary>Adam's β1 (inner optimizer of projected methods too); null: the method's.</summary>
    public float? Beta1 { get; init; }
    /// <summary>Adam's β2; null: the method's.</summary>
    public float? Beta2 { get; init; }
    /// <summary>Adam's ε; null: the method's.</summary>
    public float? Eps { get; init; }
    /// <summary>Global gradient-norm clip; 0 disables clipping.</summary>
    public float ClipNorm { get; init; } = 1f;
    /// <summary>Steps between validation evaluations.</summary>
    public int EvalEvery { get; init; } = 50;
    /// <summary>Validation micro-batches per evaluation.</summary>
    public int EvalBatches { get; init; } = 8;
    /// <summary>Steps between checkpoints (the last step always gets one).</summary>
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>Checkpoints kept in the run folder; older ones are deleted once a newer one is complete.</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>Steps between progress lines and metrics records.</summary>
    public int LogEvery { get; init; } = 10;
    /// <summary>Seeds the model's initialization, the data order and every optimizer generator.</summary>
    public ulong Seed { get; init; } = 1;
    /// <summary>Recompute each decoder block's activations during backward (activation checkpointing).</summary>
    public bool CheckpointLayers { get; init; }
    /// <summary>adamw (dense), a projected method (galore, osd, grass, frugal, lsp) or the lora baseline.</summary>
    public string Optimizer { get; init; } = "adamw";
    // The method's own numbers: null means "not given", and the method's preset (ProjectedOptions.Presets.cs) supplies
    // its default, so each default lives in one place.

    /// <summary>Rank of the projection (galore, osd, grass); null: the preset's.</summary>
    public int? Rank { get; init; }
    /// <summary>Steps T between projection refreshes (galore, grass, frugal; osd's PCA step size is 1/T); null: the preset's.</summary>
    public int? UpdateGap { get; init; }
    /// <summary>Update scale α (galore/osd 0.25, grass 1; FRUGAL's lr scale of the state-full part); null: the preset's.</summary>
    public float? Scale { get; init; }
    /// <summary>FRUGAL's density ρ (fraction of the projectable matrices, or of each one, that gets the stateful optimizer); null: the preset's.</summary>
    public float? Density { get; init; }
    /// <summary>Projection variant: galore svd|rsvd|range; grass norm2|norm|uniform[+norepl]|topnorm; frugal matrices|blocks|columns|random|svd|rsvd; osd adamw|sgd[+qr].</summary>
    public string? Projection { get; init; }
    /// <summary>FRUGAL's rule for the rest of the gradient: signsgd | sgd.</summary>
    public string? Residual { get; init; }
    /// <summary>FRUGAL: the state-free part's lr multiplier on top of --scale (inactive_lr_scale); null: the preset's (1).</summary>
    public float? ResidualScale { get; init; }
    /// <summary>FRUGAL's whole-matrix mode: random | ascending | descending; null: the preset's (descending).</summary>
    public string? BlockOrder { get; init; }
    /// <summary>Which side is projected, GaLore's proj_type: std | reverse_std | left | right; null: std.</summary>
    public string? ProjSide { get; init; }
    /// <summary>LoRA's α (scale α/r); null: 32.</summary>
    public float? LoraAlpha { get; init; }
    /// <summary>LoRA: ReLoRA-style merge-and-restart every this many steps; null: never.</summary>
    public int? LoraRestart { get; init; }
    /// <summary>LoRA restarts: zero | random | magnitude (the adapters' moments are zeroed or pruned); null: zero.</summary>
    public string? LoraRestartStates { get; init; }
    /// <summary>LoRA restarts: the fraction of moment entries pruned (random, magnitude); null: 0.9.</summary>
    public float? LoraRestartPrune { get; init; }
    /// <summary>LoRA restarts: steps of the learning rate's re-warm-up after each restart (ReLoRA's jagged schedule);
    /// null: min(100, K/2) for a restart every K steps.</summary>
    public int? LoraRestartWarmup { get; init; }

    /// <summary>The re-warm-up steps after each LoRA restart: 0 without restarts (or another optimizer than lora).</summary>
    [JsonIgnore]
    public int ResolvedLoraRestartWarmup =>
        LoraRestart is int k and > 0 && string.Equals(Optimizer, "lora", StringComparison.OrdinalIgnoreCase) ? LoraRestartWarmup ?? Math.Min(100, k / 2) : 0;
    /// <summary>OSD: the online PCA's peak learning rate; null: 1/T.</summary>
    public float? PcaLearningRate { get; init; }
    /// <summary>LSP: non-zeros d per sketch column; null: the preset's (4).</summary>
    public int? SketchNnz { get; init; }
    /// <summary>LSP: a refit check under this relative reconstruction error keeps the sketches; null: the preset's (0.2).</summary>
    public float? SketchFitThreshold { get; init; }
    /// <summary>LSP: the sketch fit's Adam learning rate; null: the preset's (0.06).</summary>
    public float? SketchFitLr { get; init; }
    /// <summary>LSP: Adam iterations per sketch refit; null: the preset's (100).</summary>
    public int? SketchFitIters { get; init; }
    /// <summary>Optimizer state precision: fp32 (AdamW moments), 8bit (block-wise quantized AdamW moments) or factored
    /// (Adafactor). Applies to the dense optimizer and to the inner optimizer of every projected method.</summary>
    public string States { get; init; } = "fp32";
    /// <summary>With --states 8bit: elements per quantization block (a power of two, 64–2048); null: 2048.</summary>
    public int? EightBitBlockSize { get; init; }
    /// <summary>Parameter dtype: fp32 or bf16 (GEMMs accumulate in fp32).</summary>
    public string Weights { get; init; } = "fp32";
    /// <summary>Dtype of the model's hidden states (and of what backward saves): fp32 or bf16 (every op still computes
    /// in fp32; logits and loss stay fp32).</summary>
    public string Activations { get; init; } = "fp32";
    /// <summary><see cref="Weights"/> as the dtype the model's parameters are created in.</summary>
    [JsonIgnore] public DType WeightDType => Weights == "bf16" ? DType.BFloat16 : DType.Float32;
    /// <summary><see cref="Activations"/> as the dtype of the hidden states.</summary>
    [JsonIgnore] public DType ActivationDType => Activations == "bf16" ? DType.BFloat16 : DType.Float32;
    /// <summary>Round bf16 weight updates stochastically instead of to nearest.</summary>
    public bool StochasticRounding { get; init; }
    /// <summary>Update bf16 weights through float32 master copies (4 more bytes per parameter).</summary>
    public bool MasterWeights { get; init; }
    /// <summary>Run each parameter's update inside backward as soon as its gradient is final, then free the gradient.</summary>
    public bool PerLayer { get; init; }
    /// <summary>In a data-parallel run, each process keeps the optimizer state of only its share of the parameters
    /// (ZeRO stage 1; see docs/distributed.md).</summary>
    public bool ShardStates { get; init; }
    /// <summary>Projected matrices take their gradient as the layer's factors (input and output gradient) and the
    /// optimizer projects from them, never forming the m×n gradient where the method allows (docs/optimizers.md).</summary>
    public bool FactoredGradients { get; init; } = true;
    /// <summary>Where the run computes: cpu, cuda, auto (cuda when present, else cpu) or ilgpu-cpu (the GPU kernels on
    /// ILGPU's CPU accelerator, for checking them). See <see cref="Devices"/>.</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>Where the inner optimizer's state lives: none (with the parameters), host (on the CPU, any method but
    /// frugal and lora), dense (host with adamw: the ZeRO-Offload baseline) or lsp (host with the LSP method). See
    /// docs/offload.md.</summary>
    public string Offload { get; init; } = "none";
    /// <summary>With --offload: overlap (host updates on a worker thread while the device goes on; the device applies
    /// them at the end of the step) or serial (the device waits for each host update). Both give the same bits.</summary>
    public string OffloadSchedule { get; init; } = "overlap";
    /// <summary>The device memory budget of an offloaded run ("4GB"): the plan must fit it, and on a GPU backend the
    /// device's tensors may not exceed it; null: none.</summary>
    public string? DeviceMemory { get; init; }

    /// <summary>Bytes of synthetic text to generate when no data files are given.</summary>
    public int SyntheticBytes { get; init; } = 2_000_000;

    /// <summary>The most optimizer steps a run can have (checkpoint folders are named step-NNNNNNN).</summary>
    public const int MaxSteps = 9_999_999;

    /// <summary>The largest generated corpus (it is generated and tokenized in memory).</summary>
    public const int MaxSyntheticBytes = 256 << 20;

    /// <summary>Tokens of one micro-batch (--batch × --seq) above this cannot be held by the data path's int arrays.</summary>
    public const long MaxTokensPerMicroBatch = 1 << 26;

    /// <summary>Checks every option and combination; throws an <see cref="ArgumentException"/> with one sentence naming
    /// the flag at fault. Returns the same options, so it chains.</summary>
    public TrainingOptions Validate()
    {
        void Positive(long v, string flag)
        {
            if (v <= 0) throw new ArgumentException($"{flag} must be positive, got {v}.");
        }
        void Finite(float v, string flag)
        {
            if (!float.IsFinite(v)) throw new ArgumentException($"{flag} must be a finite number, got {v}.");
        }
        void Given(object? v, string flag)
        {
            if (v == null) throw new ArgumentException($"{flag} must be given.");
        }
        Given(Model, "--model");
        Given(Data, "--data");
        if (Data.Any(d => string.IsNullOrEmpty(d))) throw new ArgumentException("--data names an empty path.");
        Given(Tokenizer, "--tokenizer");
        Given(Optimizer, "--optimizer");
        Given(States, "--states");
        Given(Weights, "--weights");
        Given(Activations, "--activations");
        Given(Device, "--device");
        if (LearningRate is float lrGiven) Finite(lrGiven, "--lr");
        Finite(MinLrRatio, "--min-lr-ratio");
        if (WeightDecay is float wdGiven) Finite(wdGiven, "--weight-decay");
        if (Beta1 is float b1Given) Finite(b1Given, "--beta1");
        if (Beta2 is float b2Given) Finite(b2Given, "--beta2");
        if (Eps is float epsGiven) Finite(epsGiven, "Eps");
        Finite(ClipNorm, "--clip");
        if (Scale is float scale && !(float.IsFinite(scale) && scale > 0)) throw new ArgumentException($"--scale must be a positive finite number, got {scale}.");
        if (ResidualScale is float rs && !(float.IsFinite(rs) && rs >= 0)) throw new ArgumentException($"--residual-scale must be a non-negative finite number, got {rs}.");
        if (LoraAlpha is float alpha && !(float.IsFinite(alpha) && alpha > 0)) throw new ArgumentException($"--lora-alpha must be a positive finite number, got {alpha}.");
        if (LoraRestart is int restart) Positive(restart, "--lora-restart");
        if (LoraRestartWarmup is int rewarm && (rewarm < 0 || (LoraRestart is int every && rewarm >= every)))
            throw new ArgumentException($"--lora-restart-warmup must be non-negative and below --lora-restart, got {rewarm}.");
        if (LoraRestartPrune is float prune && !(prune >= 0 && prune < 1)) throw new ArgumentException($"--lora-restart-prune must be in [0, 1), got {prune}.");
        if (Optimizer == "lora" && Weights != "fp32") throw new ArgumentException("--optimizer lora merges its adapters into float32 weights; it needs --weights fp32.");
        if (Optimizer == "lora") ToOptimizerSpec().ToLoraOptions(); // the LoRA options' own checks (pruning needs fp32 states)
        if (PcaLearningRate is float plr && !(float.IsFinite(plr) && plr >= 0)) throw new ArgumentException($"--pca-lr must be a non-negative finite number, got {plr}.");
        if (Eps is float eps && !(eps > 0)) throw new ArgumentException($"Eps must be positive, got {eps}.");
        Positive(Seq, "--seq");
        Positive(Batch, "--batch");
        Positive(GradAccum, "--grad-accum");
        Positive(Steps, "--steps");
        if (Steps > MaxSteps) throw new ArgumentException($"--steps must be at most {MaxSteps}, got {Steps}.");
        Positive(EvalEvery, "--eval-every");
        Positive(EvalBatches, "--eval-batches");
        Positive(CheckpointEvery, "--checkpoint-every");
        Positive(KeepCheckpoints, "--keep-checkpoints");
        Positive(LogEvery, "--log-every");
        Positive(SyntheticBytes, "--synthetic-bytes");
        if (SyntheticBytes > MaxSyntheticBytes) throw new ArgumentException($"--synthetic-bytes must be at most {MaxSyntheticBytes} (256 MiB), got {SyntheticBytes}.");
        if ((long)Batch * Seq > MaxTokensPerMicroBatch)
            throw new ArgumentException($"--batch {Batch} × --seq {Seq} is {(long)Batch * Seq:N0} tokens per micro-batch, over the limit of {MaxTokensPerMicroBatch:N0}.");
        if (Rank is int rank) Positive(rank, "--rank");
        if (UpdateGap is int gap) Positive(gap, "--update-gap");
        if (Density is float rho && !(rho >= 0 && rho <= 1)) throw new ArgumentException($"--density must be in [0, 1], got {rho}.");
        if (LearningRate is float lr && !(lr > 0)) throw new ArgumentException($"--lr must be positive, got {lr}.");
        if (MinLrRatio is < 0 or > 1) throw new ArgumentException($"--min-lr-ratio must be in [0, 1], got {MinLrRatio}.");
        if (Warmup < 0) throw new ArgumentException($"--warmup must be non-negative, got {Warmup}.");
        if (Beta1 is < 0 or >= 1 || Beta2 is < 0 or >= 1) throw new ArgumentException("--beta1 and --beta2 must be in [0, 1).");
        if (ClipNorm < 0) throw new ArgumentException($"--clip must be non-negative, got {ClipNorm}.");
        if (WeightDecay < 0) throw new ArgumentException($"--weight-decay must be non-negative, got {WeightDecay}.");
        if (States is not ("fp32" or "8bit" or "factored")) throw new ArgumentException($"--states must be fp32, 8bit or factored, got '{States}'.");
        if (EightBitBlockSize is int block)
        {
            if (States != "8bit") throw new ArgumentException($"--8bit-block-size sets the blocks of 8-bit states; it needs --states 8bit, not {States}.");
            if (!Numerics.BlockwiseQuantizer.IsValidBlockSize(block))
                throw new ArgumentException($"--8bit-block-size must be a power of two from {Numerics.BlockwiseQuantizer.MinBlockSize} to {Numerics.BlockwiseQuantizer.MaxBlockSize}, got {block}.");
        }
        if (!Devices.Names.Contains(Device)) throw new ArgumentException($"--device must be one of {string.Join(", ", Devices.Names)}, got '{Device}'.");
        if (Weights is not ("fp32" or "bf16")) throw new ArgumentException($"--weights must be fp32 or bf16, got '{Weights}'.");
        if (Activations is not ("fp32" or "bf16")) throw new ArgumentException($"--activations must be fp32 or bf16, got '{Activations}'.");
        if (StochasticRounding && Weights != "bf16") throw new ArgumentException("--stochastic-rounding rounds bf16 weights; it needs --weights bf16.");
        if (MasterWeights && Weights != "bf16") throw new ArgumentException("--master-weights keeps float32 copies of bf16 weights; it needs --weights bf16.");
        if (MasterWeights && StochasticRounding)
            throw new ArgumentException("--master-weights and --stochastic-rounding both keep small updates from being lost; choose one.");
        if (ShardStates && ToOptimizerSpec() is { Method: OptimizerMethod.Frugal, Subspace: FrugalSubspace.Matrices })
            throw new ArgumentException("--shard-states cannot shard FRUGAL's whole-matrix mode (its moments move between matrices at each refresh); use --projection blocks or leave out --shard-states.");
        if (SketchNnz is int nnz) Positive(nnz, "--sketch-nnz");
        if (SketchFitThreshold is float th && !(float.IsFinite(th) && th >= 0)) throw new ArgumentException($"--sketch-fit-threshold must be a non-negative finite number, got {th}.");
        if (SketchFitLr is float flr && !(float.IsFinite(flr) && flr > 0)) throw new ArgumentException($"--sketch-fit-lr must be a positive finite number, got {flr}.");
        if (SketchFitIters is int iters && iters < 0) throw new ArgumentException($"--sketch-fit-iters must be non-negative, got {iters}.");
        if (ToOptimizerSpec().Method == OptimizerMethod.Lsp && ResolvedSketchNnz > (Rank ?? ProjectedOptions.Lsp().Rank))
            throw new ArgumentException($"--sketch-nnz {ResolvedSketchNnz} must not exceed --rank {Rank ?? ProjectedOptions.Lsp().Rank} (a sketch column's non-zeros are distinct rows out of r).");
        Given(Offload, "--offload");
        if (Optim.Offload.OffloadedOptimizer.Refusal(Offload, Optimizer.Trim().ToLowerInvariant()) is string offloadError) throw new ArgumentException(offloadError);
        if (Offload != "none" && ShardStates)
            throw new ArgumentException("--offload keeps every optimizer state on this process's host, --shard-states spreads them over the processes; choose one.");
        if (OffloadSchedule is not ("overlap" or "serial")) throw new ArgumentException($"--offload-schedule must be overlap or serial, got '{OffloadSchedule}'.");
        if (DeviceMemory != null && Offload == "none") throw new ArgumentException("--device-memory budgets the device of an offloaded run; give --offload host, dense or lsp with it (or --memory-budget without offload).");
        if (DeviceMemory != null) MemoryPlan.ParseBytes(DeviceMemory, "--device-memory");
        ToOptimizerSpec(); // the optimizer's words (--optimizer, --projection, --residual) are checked here, at the edge
        return this;
    }

    /// <summary>The optimizer these options name, its words parsed once (<see cref="OptimizerSpec.Parse"/>); the
    /// method's own defaults come from its preset.</summary>
    public OptimizerSpec ToOptimizerSpec() => OptimizerSpec.Parse(Optimizer, Projection, Residual, States) with
    {
        LearningRate = LearningRate, WeightDecay = WeightDecay, Beta1 = Beta1, Beta2 = Beta2, Eps = Eps, Seed = Seed,
        EightBitBlockSize = EightBitBlockSize, Rank = Rank, UpdateGap = UpdateGap, Scale = Scale, Density = Density, ResidualScale = ResidualScale,
        Order = BlockOrder == null ? null : OptimizerSpec.ParseOrder(BlockOrder),
        Side = ProjSide == null ? null : OptimizerSpec.ParseSide(ProjSide),
        PcaLearningRate = PcaLearningRate, LoraAlpha = LoraAlpha, LoraRestart = LoraRestart,
        LoraRestartStates = LoraRestartStates == null ? null : OptimizerSpec.ParseRestartStates(LoraRestartStates), LoraRestartPrune = LoraRestartPrune,
        SketchNonZeros = SketchNnz, SketchFitThreshold = SketchFitThreshold, SketchFitLearningRate = SketchFitLr, SketchFitIterations = SketchFitIters,
    };

    /// <summary>The peak learning rate the run uses (the given one, else the method's).</summary>
    [JsonIgnore]
    public float PeakLearningRate => LearningRate ?? ToOptimizerSpec().HyperParameters.LearningRate;

    /// <summary>The projection rank the run uses (the given one, else the method's preset's).</summary>
    [JsonIgnore]
    public int ResolvedRank => Rank ?? (Optimizer == "lora" ? ToOptimizerSpec().ToLoraOptions().Rank : ToOptimizerSpec().ToOptions().Rank);

    /// <summary>LSP's non-zeros per sketch column the run uses (the given one, else the preset's).</summary>
    [JsonIgnore]
    public int ResolvedSketchNnz => SketchNnz ?? ((SketchProjectorFactory)ProjectedOptions.Lsp().Projector).NonZeros;

    /// <summary>FRUGAL's density the run uses (the given one, else the preset's).</summary>
    [JsonIgnore]
    public float ResolvedDensity => Density ?? ToOptimizerSpec().ToOptions().Density ?? 0f;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    /// <summary>The options as the run folder's train.json.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Options read back from train.json; <paramref name="source"/> names the file in errors.</summary>
    public static TrainingOptions FromJson(string json, string source)
    {
        try
        {
            var options = JsonSerializer.Deserialize<TrainingOptions>(json) ?? throw new TensorLiteException($"{source} is empty.");
            // JSON null deserializes into properties the type declares non-null: name the field instead of failing later.
            foreach (var (field, value) in new (string, object?)[]
            {
                (nameof(Model), options.Model), (nameof(Data), options.Data), (nameof(Tokenizer), options.Tokenizer), (nameof(Optimizer), options.Optimizer),
                (nameof(States), options.States), (nameof(Weights), options.Weights), (nameof(Activations), options.Activations), (nameof(Device), options.Device),
            })
                if (value == null) throw new TensorLiteException($"{source}: \"{field}\" must not be null.");
            if (options.Data.Any(string.IsNullOrEmpty)) throw new TensorLiteException($"{source}: \"Data\" holds an empty or null path.");
            return options;
        }
        catch (JsonException e)
        {
            throw new TensorLiteException($"{source} is not a valid training options file: {Models.LlamaConfig.Where(e)}.");
        }
    }
}
