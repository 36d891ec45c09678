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

    /// <summary>GaLore (Zhao et al. 2024, arXiv:2403.03507): top-r singular vectors of G every T steps, Adam on R,
    /// update α·P·N, residual dropped, moments kept across refreshes (as the reference code does).</summary>
    public static ProjectedOptions GaLore(int rank = 128, int updateGap = 200, float scale = 0.25f, bool randomizedSvd = false,
        float learningRate = 1e-3f, float weightDecay = 0f) => new ProjectedOptions
    {
        Method = randomizedSvd ? "galore-rsvd" : "galore",
        Projector = new SvdProjectorFactory(Randomized: randomizedSvd),
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
        Projector = new OnlinePcaProjectorFactory(pcaLearningRate, pcaOptimizer, orthonormalize),
        Rank = rank, UpdateGap = 1, Scale = scale,
        LearningRate = learningRate, WeightDecay = weightDecay,
        OnRefresh = MomentPolicy.Keep, Residual = ResidualRule.Drop,
    }.Validate();

    /// <summary>GRASS (Muhamed et al. 2024, arXiv:2406.17660): r rows of G (columns when m &gt; n) picked by
    /// <paramref name="selection"/> every T steps; R = G[rows]; the update touches only those rows; moments reset.</summary>
    public static ProjectedOptions Grass(int rank = 128, RowSelection selection = RowSelection.TopNorm, int updateGap = 200,
        float scale = 1f, float learningRate = 1e-3f, float weightDecay = 0f) => new ProjectedOptions
    {
        Method = "grass",
        Projector = new SparseProjectorFactory(selection),
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
        Projector = FrugalProjector(subspace),
        Density = density, UpdateGap = updateGap, Scale = 1f, FullRankAsIdentity = true,
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
        _ => new SparseProjectorFactory(RowSelection.Block),
    };

    /// <summary>The identity projection at full rank with scale 1: AdamW, inside the projected optimizer (the reference
    /// point of the property tests).</summary>
    public static ProjectedOptions AdamW(float learningRate = 1e-3f, float weightDecay = 0f) => new ProjectedOptions
    {
        Method = "adamw",
        Projector = new IdentityProjectorFactory(), Scale = 1f,
        LearningRate = learningRate, WeightDecay = weightDecay,
    }.Validate();
}
