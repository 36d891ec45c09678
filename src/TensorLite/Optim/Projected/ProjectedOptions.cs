using TensorLite.LinearAlgebra;

namespace TensorLite.Optim.Projected;

/// <summary>
/// The composition a <see cref="ProjectedOptimizer"/> runs: a projector (<see cref="Projection"/>, <see cref="Rank"/>
/// or <see cref="Density"/>, <see cref="UpdateGap"/>, <see cref="Side"/>), an inner optimizer on the projected gradient
/// (<see cref="Inner"/>, AdamW by default), a residual rule, a scale α and the moment policy at refresh. The named
/// presets are static methods (<see cref="GaLore"/>, <see cref="Osd"/>, <see cref="Grass"/>, <see cref="Frugal"/>,
/// <see cref="AdamW"/>).
/// </summary>
public sealed record ProjectedOptions
{
    /// <summary>A label for logs ("galore", "osd", …).</summary>
    public string Method { get; init; } = "custom";

    public float LearningRate { get; init; } = 1e-3f;
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.999f;
    public float Eps { get; init; } = 1e-8f;
    /// <summary>Decoupled weight decay, applied to every parameter as AdamW does: p ← (1 − lr·wd)·p − lr·update.</summary>
    public float WeightDecay { get; init; }

    public ProjectionKind Projection { get; init; } = ProjectionKind.Svd;
    /// <summary>The projection rank r, clamped to min(m, n) per parameter (ignored when <see cref="Density"/> is set).</summary>
    public int Rank { get; init; } = 128;
    /// <summary>FRUGAL's density ρ ∈ [0, 1]: each projected parameter gets rank round(ρ·min(m, n)).</summary>
    public float? Density { get; init; }
    /// <summary>Recompute the projection every this many steps of the parameter (T); OSD updates every step regardless.</summary>
    public int UpdateGap { get; init; } = 200;
    /// <summary>α: the projected update is α·back(N).</summary>
    public float Scale { get; init; } = 1f;
    public ProjectionSide Side { get; init; } = ProjectionSide.Auto;
    /// <summary>How <see cref="ProjectionKind.Sparse"/> picks rows or columns.</summary>
    public RowSelection Selection { get; init; } = RowSelection.TopNorm;
    /// <summary>When the rank reaches min(m, n), use the identity instead of a full-rank rotation (so FRUGAL's ρ = 1 is AdamW).</summary>
    public bool FullRankAsIdentity { get; init; }

    public MomentPolicy OnRefresh { get; init; } = MomentPolicy.Keep;
    public ResidualRule Residual { get; init; } = ResidualRule.Drop;
    /// <summary>The residual term's learning-rate multiplier (its step is lr·ResidualScale).</summary>
    public float ResidualScale { get; init; } = 1f;

    /// <summary>OSD: learning rate of the online PCA's own optimizer.</summary>
    public float OsdLearningRate { get; init; } = 1e-2f;
    public OnlinePcaOptimizer OsdOptimizer { get; init; } = OnlinePcaOptimizer.Adam;
    /// <summary>OSD: re-orthonormalize P by QR after each update.</summary>
    public bool OsdOrthonormalize { get; init; }

    public int RsvdOversampling { get; init; } = 10;
    public int RsvdPowerIterations { get; init; } = 2;

    /// <summary>The inner optimizer; null means AdamW with <see cref="Beta1"/>, <see cref="Beta2"/>, <see cref="Eps"/>.</summary>
    public IInnerOptimizer? Inner { get; init; }

    /// <summary>The dtype a stored basis (SVD, randomized SVD, random orthonormal) is kept in: float32, or bfloat16 to
    /// halve projector memory (the trainer uses the weights' dtype, as GaLore does). OSD's basis is trained and stays
    /// float32.</summary>
    public DType BasisDType { get; init; } = DType.Float32;

    /// <summary>Seeds the optimizer's generator (random projections, sampled selections, randomized SVD sketches).</summary>
    public ulong Seed { get; init; }

    /// <summary>Dense parameters more than twice this many elements long (LLaMA-7B's embedding and LM head have 131M) are
    /// updated this many elements at a time when the inner state allows it, so the float32 gradient and direction exist
    /// for one range (16 MiB each by default) instead of the whole matrix. The result is the same bit for bit. 0 (or any
    /// value below the state's granule) updates every parameter whole.</summary>
    public int DenseRangeElements { get; init; } = 1 << 22;

    /// <summary>Which parameters are projected, from their name and shape; null means <see cref="DefaultShouldProject"/>.
    /// The others get the dense inner optimizer (AdamW).</summary>
    public Func<string, int[], bool>? ShouldProject { get; init; }

    /// <summary>The default: 2-D parameters whose names contain "self_attn." or "mlp." (LLaMA's attention and MLP
    /// weights); embeddings, norms and the LM head stay dense.</summary>
    public static bool DefaultShouldProject(string name, int[] shape) =>
        shape.Length == 2 && (name.Contains("self_attn.", StringComparison.Ordinal) || name.Contains("mlp.", StringComparison.Ordinal));

    /// <summary>Projects every 2-D parameter (for models whose names are not LLaMA's).</summary>
    public static bool AllMatrices(string name, int[] shape) => shape.Length == 2;

    internal bool Projects(string name, int[] shape) => (ShouldProject ?? DefaultShouldProject)(name, shape);

    internal IInnerOptimizer ResolveInner() => Inner ?? new AdamWInner(Beta1, Beta2, Eps);

    /// <summary>The words of <see cref="InnerFromCli"/>.</summary>
    public static IReadOnlyList<string> StateWords { get; } = ["fp32", "8bit", "factored"];

    /// <summary>
    /// Maps the command line's optimizer-state word to an inner optimizer: "fp32" is <see cref="AdamWInner"/>,
    /// "8bit" is <see cref="AdamW8bitInner"/> (block-wise 8-bit moments; tensors under 4096 elements stay float32),
    /// "factored" is <see cref="AdafactorInner"/> with a first moment of decay <paramref name="beta1"/> (none when
    /// <paramref name="beta1"/> is 0; <paramref name="beta2"/> and <paramref name="eps"/> do not apply to it, since
    /// Adafactor's decay is 1 − t^(−0.8) and its ε1 is 10⁻³⁰). An unknown word throws an
    /// <see cref="ArgumentException"/> whose message is one sentence listing the choices.
    /// </summary>
    public static IInnerOptimizer InnerFromCli(string states, float beta1, float beta2, float eps) => states switch
    {
        "fp32" => new AdamWInner(beta1, beta2, eps),
        "8bit" => new AdamW8bitInner(beta1, beta2, eps),
        "factored" => new AdafactorInner(beta1 == 0f ? null : beta1),
        _ => throw new ArgumentException($"Unknown optimizer states '{states}'; choose one of {string.Join(", ", StateWords)}.", nameof(states)),
    };

    /// <summary>The resolved side for a [m, n] parameter.</summary>
    public ProjectionSide SideFor(int m, int n) => Side != ProjectionSide.Auto ? Side : m <= n ? ProjectionSide.Left : ProjectionSide.Right;

    /// <summary>The rank a [m, n] projected parameter gets: 0 means no inner state (residual rule only), min(m, n) with
    /// the identity projection means full-rank AdamW.</summary>
    public int RankFor(int m, int n)
    {
        int full = Math.Min(m, n);
        if (Projection == ProjectionKind.Identity) return full;
        if (Density is float rho) return (int)Math.Round(rho * full, MidpointRounding.AwayFromZero);
        return Math.Min(Rank, full);
    }

    /// <summary>Whether a [m, n] projected parameter uses the identity projector.</summary>
    public bool IsIdentityFor(int m, int n) =>
        Projection == ProjectionKind.Identity || (FullRankAsIdentity && RankFor(m, n) == Math.Min(m, n));

    /// <summary>Checks the options; throws an argument exception with one sentence on the first problem.</summary>
    public ProjectedOptions Validate()
    {
        if (!(LearningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), "The learning rate must be non-negative.");
        if (Beta1 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Beta1), "beta1 must be in [0, 1).");
        if (Beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Beta2), "beta2 must be in [0, 1).");
        if (!(Eps > 0)) throw new ArgumentOutOfRangeException(nameof(Eps), "eps must be positive.");
        if (!float.IsFinite(WeightDecay)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), "The weight decay must be finite.");
        if (Density is float rho && !(rho >= 0 && rho <= 1)) throw new ArgumentOutOfRangeException(nameof(Density), $"The density ρ must be in [0, 1], got {rho}.");
        if (Density == null && Projection != ProjectionKind.Identity && Rank < 1)
            throw new ArgumentOutOfRangeException(nameof(Rank), $"The projection rank must be at least 1, got {Rank}.");
        if (UpdateGap < 1) throw new ArgumentOutOfRangeException(nameof(UpdateGap), $"The projection update gap must be at least 1 step, got {UpdateGap}.");
        if (DenseRangeElements < 0) throw new ArgumentOutOfRangeException(nameof(DenseRangeElements), $"The dense update range must be non-negative (0 = whole parameters), got {DenseRangeElements}.");
        if (!float.IsFinite(Scale)) throw new ArgumentOutOfRangeException(nameof(Scale), "The scale α must be finite.");
        if (!float.IsFinite(ResidualScale)) throw new ArgumentOutOfRangeException(nameof(ResidualScale), "The residual scale must be finite.");
        if (!(OsdLearningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(OsdLearningRate), "The online PCA learning rate must be non-negative.");
        if (RsvdOversampling < 0) throw new ArgumentOutOfRangeException(nameof(RsvdOversampling), "The randomized SVD oversampling must be non-negative.");
        if (RsvdPowerIterations < 0) throw new ArgumentOutOfRangeException(nameof(RsvdPowerIterations), "The randomized SVD power iterations must be non-negative.");
        if (Projection == ProjectionKind.Sparse && Selection is not (RowSelection.TopNorm or RowSelection.NormProportional
            or RowSelection.NormSquaredProportional or RowSelection.Uniform or RowSelection.Block))
            throw new ArgumentOutOfRangeException(nameof(Selection), $"Unknown row selection {Selection}.");
        return this;
    }

    // ---- presets --------------------------------------------------------------------------------

    /// <summary>GaLore (Zhao et al. 2024, arXiv:2403.03507): top-r singular vectors of G every T steps, Adam on R,
    /// update α·P·N, residual dropped, moments kept across refreshes (as the reference code does).</summary>
    public static ProjectedOptions GaLore(int rank = 128, int updateGap = 200, float scale = 0.25f, bool randomizedSvd = false,
        float learningRate = 1e-3f, float weightDecay = 0f) => new ProjectedOptions
    {
        Method = randomizedSvd ? "galore-rsvd" : "galore",
        Projection = randomizedSvd ? ProjectionKind.RandomizedSvd : ProjectionKind.Svd,
        Rank = rank, UpdateGap = updateGap, Scale = scale,
        LearningRate = learningRate, WeightDecay = weightDecay,
        OnRefresh = MomentPolicy.Keep, Residual = ResidualRule.Drop,
    }.Validate();

    /// <summary>Online Subspace Descent (Liang et al. 2024, arXiv:2408.12857): P updated every step by online PCA (Adam on
    /// ‖G − PPᵀG‖²), never by SVD; moments kept.</summary>
    public static ProjectedOptions Osd(int rank = 128, float scale = 0.25f, float pcaLearningRate = 1e-2f,
        bool orthonormalize = false, OnlinePcaOptimizer pcaOptimizer = OnlinePcaOptimizer.Adam,
        float learningRate = 1e-3f, float weightDecay = 0f) => new ProjectedOptions
    {
        Method = "osd",
        Projection = ProjectionKind.OnlinePca,
        Rank = rank, UpdateGap = 1, Scale = scale,
        OsdLearningRate = pcaLearningRate, OsdOrthonormalize = orthonormalize, OsdOptimizer = pcaOptimizer,
        LearningRate = learningRate, WeightDecay = weightDecay,
        OnRefresh = MomentPolicy.Keep, Residual = ResidualRule.Drop,
    }.Validate();

    /// <summary>GRASS (Muhamed et al. 2024, arXiv:2406.17660): r rows of G (columns when m &gt; n) picked by
    /// <paramref name="selection"/> every T steps; R = G[rows]; the update touches only those rows; moments reset.</summary>
    public static ProjectedOptions Grass(int rank = 128, RowSelection selection = RowSelection.TopNorm, int updateGap = 200,
        float scale = 1f, float learningRate = 1e-3f, float weightDecay = 0f) => new ProjectedOptions
    {
        Method = "grass",
        Projection = ProjectionKind.Sparse, Selection = selection,
        Rank = rank, UpdateGap = updateGap, Scale = scale,
        LearningRate = learningRate, WeightDecay = weightDecay,
        OnRefresh = MomentPolicy.Reset, Residual = ResidualRule.Drop,
    }.Validate();

    /// <summary>FRUGAL (Zmushko et al. 2024, arXiv:2411.07837): a state-full subspace of density ρ (rank
    /// round(ρ·min(m, n))) gets Adam; the rest of the gradient gets state-free SignSGD (or SGD) with step
    /// lr·<paramref name="residualScale"/>; moments reset at each refresh. ρ = 1 is AdamW, ρ = 0 is SignSGD/SGD on
    /// every projected parameter.</summary>
    public static ProjectedOptions Frugal(float density = 0.25f, FrugalSubspace subspace = FrugalSubspace.Blocks,
        ResidualRule residual = ResidualRule.SignSgd, int updateGap = 200, float residualScale = 1f,
        float learningRate = 1e-3f, float weightDecay = 0f) => new ProjectedOptions
    {
        Method = "frugal",
        Projection = subspace switch
        {
            FrugalSubspace.Svd => ProjectionKind.Svd,
            FrugalSubspace.RandomizedSvd => ProjectionKind.RandomizedSvd,
            FrugalSubspace.Random => ProjectionKind.RandomOrthonormal,
            _ => ProjectionKind.Sparse,
        },
        Selection = subspace == FrugalSubspace.Blocks ? RowSelection.Block : RowSelection.Uniform,
        Density = density, UpdateGap = updateGap, Scale = 1f, FullRankAsIdentity = true,
        LearningRate = learningRate, WeightDecay = weightDecay,
        OnRefresh = MomentPolicy.Reset,
        Residual = residual == ResidualRule.Drop
            ? throw new ArgumentException("FRUGAL's residual rule is SignSgd or Sgd; use GaLore or GRASS to drop it.", nameof(residual))
            : residual,
        ResidualScale = residualScale,
    }.Validate();

    /// <summary>The identity projection at full rank with scale 1: AdamW, inside the projected optimizer (the reference
    /// point of the property tests).</summary>
    public static ProjectedOptions AdamW(float learningRate = 1e-3f, float weightDecay = 0f) => new ProjectedOptions
    {
        Method = "adamw",
        Projection = ProjectionKind.Identity, Scale = 1f,
        LearningRate = learningRate, WeightDecay = weightDecay,
    }.Validate();
}
