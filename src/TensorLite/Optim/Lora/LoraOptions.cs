using TensorLite.Optim.Projected;

namespace TensorLite.Optim.Lora;

/// <summary>
/// The LoRA baseline (Hu et al. 2021, arXiv:2106.09685) as the projected-optimizer papers pre-train it: every projected
/// matrix W [m, n] (attention and MLP, as <see cref="ProjectedOptions.DefaultShouldProject"/>) is frozen and learns
/// through W + (α/r)·B·A with A [r, n], B [m, r]; the other parameters (embeddings, norms, LM head) train densely. r is
/// clamped to min(m, n) per matrix.
/// </summary>
public sealed record LoraOptions
{
    /// <summary>r: the adapter rank (at least 1; default 128), clamped to min(m, n) per matrix.</summary>
    public int Rank { get; init; } = 128;
    /// <summary>α: the adapter's scale is α/r (PEFT's lora_alpha).</summary>
    public float Alpha { get; init; } = 32f;
    /// <summary>The peak learning rate of the adapters and the dense parameters (non-negative; default 10⁻³).</summary>
    public float LearningRate { get; init; } = 1e-3f;
    /// <summary>Decoupled weight decay on the adapters and the dense parameters (never on the frozen base).</summary>
    public float WeightDecay { get; init; }
    /// <summary>The optimizer of A, B and the dense parameters; null means AdamW.</summary>
    public IInnerOptimizer? Inner { get; init; }
    /// <summary>Seeds A's initial draw (and its redraw at each restart), with the parameter index.</summary>
    public ulong Seed { get; init; }
    /// <summary>ReLoRA-style merge-and-restart (Lialin et al. 2023, arXiv:2307.05695) every this many steps: the merged
    /// adapters stay in the weights as the new base, A is drawn afresh, B restarts from zero and the adapters' moments
    /// are treated as <see cref="RestartStates"/> says. 0 never restarts (plain LoRA).</summary>
    public int RestartEvery { get; init; }
    /// <summary>What a restart does to the adapters' moments: zero them (default) or prune a fraction
    /// <see cref="RestartPruneRatio"/> at random or by magnitude. Pruning needs float32 AdamW moments.</summary>
    public LoraRestartStates RestartStates { get; init; } = LoraRestartStates.Zero;
    /// <summary>The fraction of moment entries a pruning restart zeroes, in [0, 1) (default 0.9, the reference's
    /// recommended <c>--optimizer_magnitude_pruning 0.9</c>).</summary>
    public float RestartPruneRatio { get; init; } = 0.9f;
    /// <summary>Which matrices get adapters; null means <see cref="ProjectedOptions.DefaultShouldProject"/>.</summary>
    public Func<string, int[], bool>? ShouldAdapt { get; init; }

    internal bool Adapts(string name, int[] shape) => (ShouldAdapt ?? ProjectedOptions.DefaultShouldProject)(name, shape);

    /// <summary>The adapter rank of a [m, n] matrix.</summary>
    public int RankFor(int m, int n) => Math.Min(Rank, Math.Min(m, n));

    /// <summary>Returns these options unchanged, or throws an <see cref="ArgumentOutOfRangeException"/> naming the
    /// first bad value.</summary>
    public LoraOptions Validate()
    {
        if (Rank < 1) throw new ArgumentOutOfRangeException(nameof(Rank), $"The LoRA rank must be at least 1, got {Rank}.");
        if (!(float.IsFinite(Alpha) && Alpha > 0)) throw new ArgumentOutOfRangeException(nameof(Alpha), $"The LoRA alpha must be a positive number, got {Alpha}.");
        if (!(LearningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), "The learning rate must be non-negative.");
        if (RestartEvery < 0) throw new ArgumentOutOfRangeException(nameof(RestartEvery), $"The LoRA restart interval must be non-negative (0 = never), got {RestartEvery}.");
        if (!float.IsFinite(WeightDecay)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), "The weight decay must be finite.");
        if (!(RestartPruneRatio >= 0 && RestartPruneRatio < 1))
            throw new ArgumentOutOfRangeException(nameof(RestartPruneRatio), $"The LoRA restart prune ratio must be in [0, 1), got {RestartPruneRatio}.");
        if (RestartStates != LoraRestartStates.Zero && Inner is not (null or AdamWInner))
            throw new ArgumentException("Pruning the LoRA moments at a restart needs float32 AdamW states (--states fp32).", nameof(RestartStates));
        return this;
    }
}
