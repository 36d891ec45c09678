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
    public int Seq { get; init; } = 128;
    public int Batch { get; init; } = 16;
    public int GradAccum { get; init; } = 1;
    public int Steps { get; init; } = 300;
    public float LearningRate { get; init; } = 3e-3f;
    public float MinLrRatio { get; init; } = 0.1f;
    public int Warmup { get; init; } = 30;
    public float WeightDecay { get; init; } = 0.1f;
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float Eps { get; init; } = 1e-8f;
    /// <summary>Global gradient-norm clip; 0 disables clipping.</summary>
    public float ClipNorm { get; init; } = 1f;
    public int EvalEvery { get; init; } = 50;
    public int EvalBatches { get; init; } = 8;
    public int CheckpointEvery { get; init; } = 100;
    public int KeepCheckpoints { get; init; } = 2;
    public int LogEvery { get; init; } = 10;
    public ulong Seed { get; init; } = 1;
    /// <summary>Recompute each decoder block's activations during backward (activation checkpointing).</summary>
    public bool CheckpointLayers { get; init; }
    /// <summary>adamw (dense) or a projected method: galore, osd, grass, frugal.</summary>
    public string Optimizer { get; init; } = "adamw";
    /// <summary>Rank of the projection (galore, osd, grass).</summary>
    public int Rank { get; init; } = 128;
    /// <summary>Steps between projection refreshes (galore, grass, frugal).</summary>
    public int UpdateGap { get; init; } = 200;
    /// <summary>Update scale α (galore/osd default 0.25, grass 1).</summary>
    public float? Scale { get; init; }
    /// <summary>FRUGAL's fraction ρ of each projected matrix that gets the stateful optimizer.</summary>
    public float Density { get; init; } = 0.25f;
    /// <summary>Projection variant: galore svd|rsvd|range; grass topnorm|norm|norm2|uniform; frugal blocks|columns|random|svd|rsvd; osd adam|sgd[+qr].</summary>
    public string? Projection { get; init; }
    /// <summary>FRUGAL's rule for the rest of the gradient: signsgd | sgd.</summary>
    public string? Residual { get; init; }
    /// <summary>Optimizer state precision: fp32 (AdamW moments), 8bit (block-wise quantized AdamW moments) or factored
    /// (Adafactor). Applies to the dense optimizer and to the inner optimizer of every projected method.</summary>
    public string States { get; init; } = "fp32";
    /// <summary>Parameter dtype: fp32 or bf16 (GEMMs accumulate in fp32).</summary>
    public string Weights { get; init; } = "fp32";
    /// <summary>Dtype of the model's hidden states (and of what backward saves): fp32 or bf16 (every op still computes
    /// in fp32; logits and loss stay fp32).</summary>
    public string Activations { get; init; } = "fp32";
    /// <summary>Round bf16 weight updates stochastically instead of to nearest.</summary>
    public bool StochasticRounding { get; init; }
    /// <summary>Update bf16 weights through float32 master copies (4 more bytes per parameter).</summary>
    public bool MasterWeights { get; init; }
    /// <summary>Run each parameter's update inside backward as soon as its gradient is final, then free the gradient.</summary>
    public bool PerLayer { get; init; }
    /// <summary>Where the run computes: cpu, cuda, auto (cuda when present, else cpu) or ilgpu-cpu (the GPU kernels on
    /// ILGPU's CPU accelerator, for checking them). See <see cref="Devices"/>.</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>Bytes of synthetic text to generate when no data files are given.</summary>
    public int SyntheticBytes { get; init; } = 2_000_000;

    /// <summary>The most optimizer steps a run can have (checkpoint folders are named step-NNNNNNN).</summary>
    public const int MaxSteps = 9_999_999;

    /// <summary>The largest generated corpus (it is generated and tokenized in memory).</summary>
    public const int MaxSyntheticBytes = 256 << 20;

    /// <summary>Tokens of one micro-batch (--batch × --seq) above this cannot be held by the data path's int arrays.</summary>
    public const long MaxTokensPerMicroBatch = 1 << 26;

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
        Finite(LearningRate, "--lr");
        Finite(MinLrRatio, "--min-lr-ratio");
        Finite(WeightDecay, "--weight-decay");
        Finite(Beta1, "--beta1");
        Finite(Beta2, "--beta2");
        Finite(Eps, "Eps");
        Finite(ClipNorm, "--clip");
        Finite(Density, "--density");
        if (Scale is float scale && !(float.IsFinite(scale) && scale > 0)) throw new ArgumentException($"--scale must be a positive finite number, got {scale}.");
        if (!(Eps > 0)) throw new ArgumentException($"Eps must be positive, got {Eps}.");
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
        Positive(Rank, "--rank");
        Positive(UpdateGap, "--update-gap");
        if (Density is < 0 or > 1) throw new ArgumentException($"--density must be in [0, 1], got {Density}.");
        if (!(LearningRate > 0)) throw new ArgumentException($"--lr must be positive, got {LearningRate}.");
        if (MinLrRatio is < 0 or > 1) throw new ArgumentException($"--min-lr-ratio must be in [0, 1], got {MinLrRatio}.");
        if (Warmup < 0) throw new ArgumentException($"--warmup must be non-negative, got {Warmup}.");
        if (Beta1 is < 0 or >= 1 || Beta2 is < 0 or >= 1) throw new ArgumentException("--beta1 and --beta2 must be in [0, 1).");
        if (ClipNorm < 0) throw new ArgumentException($"--clip must be non-negative, got {ClipNorm}.");
        if (WeightDecay < 0) throw new ArgumentException($"--weight-decay must be non-negative, got {WeightDecay}.");
        if (States is not ("fp32" or "8bit" or "factored")) throw new ArgumentException($"--states must be fp32, 8bit or factored, got '{States}'.");
        if (!Devices.Names.Contains(Device)) throw new ArgumentException($"--device must be one of {string.Join(", ", Devices.Names)}, got '{Device}'.");
        if (Weights is not ("fp32" or "bf16")) throw new ArgumentException($"--weights must be fp32 or bf16, got '{Weights}'.");
        if (Activations is not ("fp32" or "bf16")) throw new ArgumentException($"--activations must be fp32 or bf16, got '{Activations}'.");
        if (StochasticRounding && Weights != "bf16") throw new ArgumentException("--stochastic-rounding rounds bf16 weights; it needs --weights bf16.");
        if (MasterWeights && Weights != "bf16") throw new ArgumentException("--master-weights keeps float32 copies of bf16 weights; it needs --weights bf16.");
        if (MasterWeights && StochasticRounding)
            throw new ArgumentException("--master-weights and --stochastic-rounding both keep small updates from being lost; choose one.");
        ToOptimizerSpec(); // the optimizer's words (--optimizer, --projection, --residual) are checked here, at the edge
        return this;
    }

    /// <summary>The optimizer these options name, its words parsed once (<see cref="OptimizerSpec.Parse"/>); the
    /// method's own defaults come from its preset.</summary>
    public OptimizerSpec ToOptimizerSpec() => OptimizerSpec.Parse(Optimizer, Projection, Residual, States) with
    {
        LearningRate = LearningRate, WeightDecay = WeightDecay, Beta1 = Beta1, Beta2 = Beta2, Eps = Eps, Seed = Seed,
        Rank = Rank, UpdateGap = UpdateGap, Scale = Scale, Density = Density,
    };

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

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
