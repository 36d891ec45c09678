using TensorLite.LinearAlgebra;

namespace TensorLite.Optim.Projected;

/// <summary>The named methods: each preset fixes a projector, a residual rule, a moment policy and the method's
/// defaults (rank, update gap, scale α, density), so callers (the trainer, the planner, the CLI) take them from here.</summary>
public sealed partial record ProjectedOptions
{
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
    public static IInnerOptimizer InnerFromCli(string states, float beta1, float beta2, float eps) =>
        OptimizerSpec.CreateInner(OptimizerSpec.ParseStates(states), beta1, beta2, eps);

    // Each method's reference pre-training numbers (LLaMA-60M on C4; sources in docs/optimizers.md). AdamW keeps the
    // trainer's own: they are this project's dense baseline, not a paper's.
    private const float AdamWLr = 3e-3f, AdamWDecay = 0.1f, AdamWBeta2 = 0.95f;
    private const float GaLoreLr = 1e-2f;     // GaLore README, LLaMA-60M: --lr 0.01 --weight_decay 0
    private const float GaLoreEps = 1e-6f;    // galore_torch/adamw.py: eps defaults to 1e-6, betas (0.9, 0.999)
    private const float OsdLr = 1e-2f;        // OSD README, LLaMA-60M: --lr 0.01 --weight_decay 0 (same AdamW code as GaLore)
    private const float FrugalLr = 1e-3f;     // FRUGAL scripts/benchmark_c4/llama_60m.sh: --lr 0.001 --eps 1e-8 --beta2 0.999
    // The LoRA baseline has no reference pre-training lr. GaLore's 0.01 diverged on both of the comparison's datasets and
    // 5e-3 in one seed of three; 2.5e-3 trained stably in every seed (docs/results.md), so it is the default.
    private const float LoraLr = 2.5e-3f;
    // LSP_Offload is a fine-tuning method: its numbers are the reference's DeepSeek-Coder-1.3B run
    // (simluation/example/run_sft_lsp.sh 1e-4 100 1280 4 6e-2; sft_main_lsp.py defaults wd 0.01, betas 0.9/0.999, eps 1e-8).
    private const float LspLr = 1e-4f, LspDecay = 0.01f;

    /// <summary>The lr, weight decay, β1, β2 and ε a method runs with when the run does not give them.</summary>
    public static MethodHyperParameters HyperParametersOf(OptimizerMethod method) => method switch
    {
        OptimizerMethod.AdamW => new(AdamWLr, AdamWDecay, 0.9f, AdamWBeta2, 1e-8f),
        OptimizerMethod.GaLore => new(GaLoreLr, 0f, 0.9f, 0.999f, GaLoreEps),
        OptimizerMethod.Osd => new(OsdLr, 0f, 0.9f, 0.999f, GaLoreEps),
        // GRASS's code is not public: the paper compares with GaLore at GaLore's setting, so GRASS takes GaLore's numbers.
        OptimizerMethod.Grass => new(GaLoreLr, 0f, 0.9f, 0.999f, GaLoreEps),
        OptimizerMethod.Frugal => new(FrugalLr, 0f, 0.9f, 0.999f, 1e-8f),
        // The LoRA baseline: GaLore's AdamW numbers (for a like comparison) except the lr, measured here (LoraLr).
        OptimizerMethod.Lora => new(LoraLr, 0f, 0.9f, 0.999f, GaLoreEps),
        OptimizerMethod.Lsp => new(LspLr, LspDecay, 0.9f, 0.999f, 1e-8f),
        _ => throw new ArgumentOutOfRangeException(nameof(method), $"Unknown optimizer method {method}."),
    };

    // The defaults below are each method's reference pre-training settings (LLaMA-60M on C4); docs/optimizers.md has the
    // table with the source of every number. Only the method's own numbers live here: the training run's lr, betas and
    // weight decay come from the trainer unless a caller passes the preset's learningRate / weightDecay.

    /// <summary>GaLore (Zhao et al. 2024, arXiv:2403.03507): top-r singular vectors of G every T steps, Adam on R,
    /// update α·P·N, residual dropped, moments kept across refreshes (as the reference code does). Reference defaults:
    /// rank 128, T = 200, α = 0.25, lr 0.01, no weight decay.</summary>
    public static ProjectedOptions GaLore(int rank = 128, int updateGap = 200, float scale = 0.25f, bool randomizedSvd = false,
        float learningRate = GaLoreLr, float weightDecay = 0f, ProjectionSide side = ProjectionSide.Auto) => new ProjectedOptions
    {
        Method = randomizedSvd ? "galore-rsvd" : "galore",
        Projector = new SvdProjectorFactory(Randomized: randomizedSvd),
        Rank = rank, UpdateGap = updateGap, Scale = scale, Side = side,
        LearningRate = learningRate, WeightDecay = weightDecay,
        OnRefresh = MomentPolicy.Keep, Residual = ResidualRule.Drop,
    }.Validate();

    /// <summary>Online Subspace Descent (Liang et al. 2024, arXiv:2408.12857; the reference's proj_type "continuous"): P
    /// starts as GaLore's SVD basis of the first gradient and is then updated every step by AdamW on ‖Ĝ − PPᵀĜ‖²
    /// (Ĝ = G/‖G‖_F) with lr (1/T)·lr_t/lr_peak (<paramref name="pcaLearningRate"/> null) and weight decay 0.01; moments
    /// kept. Reference defaults: rank 128, T = 200, α = 0.25, lr 0.01, no weight decay.</summary>
    public static ProjectedOptions Osd(int rank = 128, float scale = 0.25f, float? pcaLearningRate = null,
        bool orthonormalize = false, OnlinePcaOptimizer pcaOptimizer = OnlinePcaOptimizer.Adam,
        float learningRate = OsdLr, float weightDecay = 0f, int updateGap = 200, ProjectionSide side = ProjectionSide.Auto) => new ProjectedOptions
    {
        Method = "osd",
        Projector = new OnlinePcaProjectorFactory(pcaLearningRate, pcaOptimizer, orthonormalize),
        Rank = rank, UpdateGap = updateGap, Scale = scale, Side = side,
        LearningRate = learningRate, WeightDecay = weightDecay,
        OnRefresh = MomentPolicy.Keep, Residual = ResidualRule.Drop,
    }.Validate();

    /// <summary>GRASS (Muhamed et al. 2024, arXiv:2406.17660): r rows of G (columns when the side rule says right)
    /// sampled every T steps with q ∝ ‖row‖² (<paramref name="selection"/>), with replacement, re-scaled by 1/√(r·q_j)
    /// so that PᵀP·G is unbiased (<see cref="RowSampler"/>); R = ρ·G[rows]; the update touches only those rows; moments
    /// reset. Rank, T and lr follow GaLore's setting, which the paper compares against.</summary>
    public static ProjectedOptions Grass(int rank = 128, RowSelection selection = RowSelection.NormSquaredProportional, int updateGap = 200,
        float scale = 1f, float learningRate = GaLoreLr, float weightDecay = 0f, bool withReplacement = true,
        ProjectionSide side = ProjectionSide.Auto) => new ProjectedOptions
    {
        Method = "grass",
        Projector = selection is RowSelection.TopNorm or RowSelection.Block
            ? new SparseProjectorFactory(selection)
            : new SparseProjectorFactory(selection, Rescaled: true, WithReplacement: withReplacement),
        Rank = rank, UpdateGap = updateGap, Scale = scale, Side = side,
        LearningRate = learningRate, WeightDecay = weightDecay,
        OnRefresh = MomentPolicy.Reset, Residual = ResidualRule.Drop,
    }.Validate();

    /// <summary>FRUGAL (Zmushko et al. 2024, arXiv:2411.07837). By default the reference's "frugal" mode
    /// (<see cref="FrugalSubspace.Matrices"/>): round(ρ·k) whole matrices get AdamW at lr·<paramref name="scale"/>, chosen
    /// in <paramref name="order"/> every T steps with fresh moments, the others state-free SignSGD (or SGD) at
    /// lr·scale·<paramref name="residualScale"/>. The other subspaces split every matrix into a state-full part of
    /// rank round(ρ·min(m, n)) and the rest. Reference pre-training defaults: ρ = 0.25, T = 200, descending order,
    /// SignSGD, both scales 1, lr 1e-3, no weight decay.</summary>
    public static ProjectedOptions Frugal(float density = 0.25f, FrugalSubspace subspace = FrugalSubspace.Matrices,
        ResidualRule residual = ResidualRule.SignSgd, int updateGap = 200, float residualScale = 1f,
        float learningRate = FrugalLr, float weightDecay = 0f, MatrixOrder order = MatrixOrder.Descending, float scale = 1f,
        ProjectionSide side = ProjectionSide.Auto) => new ProjectedOptions
    {
        Method = "frugal",
        Projector = subspace == FrugalSubspace.Matrices ? new WholeMatrixProjectorFactory(order) : FrugalProjector(subspace),
        Density = density, UpdateGap = updateGap, Scale = scale, FullRankAsIdentity = true, Side = side,
        LearningRate = learningRate, WeightDecay = weightDecay,
        OnRefresh = MomentPolicy.Reset,
        Residual = residual == ResidualRule.Drop
            ? throw new ArgumentException("FRUGAL's residual rule is SignSgd or Sgd; use GaLore or GRASS to drop it.", nameof(residual))
            : residual,
        ResidualScale = residualScale,
    }.Validate();

    /// <summary>The projector of a FRUGAL subspace.</summary>
    public static ProjectorFactory FrugalProjector(FrugalSubspace subspace) => subspace switch
    {
        FrugalSubspace.Svd => new SvdProjectorFactory(),
        FrugalSubspace.RandomizedSvd => new SvdProjectorFactory(Randomized: true),
        FrugalSubspace.Random => new RandomOrthonormalProjectorFactory(),
        FrugalSubspace.Columns => new SparseProjectorFactory(RowSelection.Uniform),
        FrugalSubspace.Matrices => new WholeMatrixProjectorFactory(MatrixOrder.Descending),
        _ => new SparseProjectorFactory(RowSelection.Block),
    };

    /// <summary>LSP_Offload's projection (Chen et al. 2024, arXiv:2406.10181) without the offload: sparse sketches S_l
    /// [r, m] and S_r [r, n] with <paramref name="nonZeros"/> non-zeros per column (values learned, pattern fixed), R =
    /// S_l·G·S_rᵀ [r, r], Adam on R, update S_lᵀ·N·S_r, residual dropped, decoupled weight decay on the whole weight.
    /// Every <paramref name="updateGap"/> steps the sketches' relative error on the step's gradient is checked and, when
    /// at least <paramref name="fitThreshold"/>, their values are refit by <paramref name="fitIterations"/> Adam steps at
    /// <paramref name="fitLearningRate"/>; the moments are then carried into the new sketches (m ← L·m·Rᵀ,
    /// v ← (L∘L)·v·(R∘R)ᵀ). Defaults: the reference's DeepSeek-Coder-1.3B fine-tuning run — r 1280 (clamped to
    /// min(m, n) per matrix), d 4, refit check every 100 steps, threshold 0.2, fit lr 0.06 for 100 iterations, lr 1e-4,
    /// weight decay 0.01.</summary>
    public static ProjectedOptions Lsp(int rank = 1280, int nonZeros = 4, int updateGap = 100, float fitThreshold = 0.2f,
        float fitLearningRate = 0.06f, int fitIterations = 100, float learningRate = LspLr, float weightDecay = LspDecay) => new ProjectedOptions
    {
        Method = "lsp",
        Projector = new SketchProjectorFactory(nonZeros, fitThreshold, fitLearningRate, fitIterations),
        Rank = rank, UpdateGap = updateGap, Scale = 1f,
        LearningRate = learningRate, WeightDecay = weightDecay,
        OnRefresh = MomentPolicy.Rotate, Residual = ResidualRule.Drop,
    }.Validate();

    /// <summary>The identity projection at full rank with scale 1: AdamW, inside the projected optimizer (the reference
    /// point of the property tests).</summary>
    public static ProjectedOptions AdamW(float learningRate = 1e-3f, float weightDecay = 0f) => new ProjectedOptions
    {
        Method = "adamw",
        Projector = new IdentityProjectorFactory(), Scale = 1f,
        LearningRate = learningRate, WeightDecay = weightDecay,
    }.Validate();
}
