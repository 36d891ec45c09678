namespace TensorLite.Optim.Projected;

/// <summary>
/// Online Subspace Descent's projection and its own settings: the online PCA's peak <paramref name="LearningRate"/>
/// (null: 1/T with T the options' update gap, as the reference), its <paramref name="Optimizer"/> (AdamW or SGD on
/// ‖Ĝ − P·Pᵀ·Ĝ‖²), AdamW's <paramref name="WeightDecay"/> on P (0.01, torch.optim.AdamW's default, which the reference
/// keeps) and whether P is re-orthonormalized by QR after each update. The basis is trained, so it stays float32
/// whatever basis dtype the options ask for.
/// </summary>
public sealed record OnlinePcaProjectorFactory(float? LearningRate = null, OnlinePcaOptimizer Optimizer = OnlinePcaOptimizer.Adam,
    bool Orthonormalize = false, float WeightDecay = 0.01f) : ProjectorFactory
{
    /// <inheritdoc/>
    public override ProjectionKind Kind => ProjectionKind.OnlinePca;

    /// <summary>P takes a step from every gradient (<see cref="OnlinePcaProjector.IsRefreshDue"/> is always true).</summary>
    public override bool RefreshesEveryStep => true;

    /// <summary>The online PCA's peak learning rate for an update gap T.</summary>
    public float LearningRateFor(int updateGap) => LearningRate ?? 1f / updateGap;

    /// <inheritdoc/>
    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        new OnlinePcaProjector(side, m, n, rank, LearningRateFor(updateGap), Optimizer, Orthonormalize, WeightDecay);

    /// <summary>P in float32, and with Adam its two moments of P's shape.</summary>
    public override long PredictStateBytes(ProjectionSide side, int m, int n, int rank, DType basisDType) =>
        4 * ProjectedLength(side, m, n) * rank * (Optimizer == OnlinePcaOptimizer.Adam ? 3 : 1);

    /// <inheritdoc/>
    public override void Validate()
    {
        if (LearningRate is float lr && !(lr >= 0 && float.IsFinite(lr))) throw new ArgumentOutOfRangeException(nameof(LearningRate), "The online PCA learning rate must be a non-negative number.");
        if (!(WeightDecay >= 0 && float.IsFinite(WeightDecay))) throw new ArgumentOutOfRangeException(nameof(WeightDecay), "The online PCA weight decay must be a non-negative number.");
    }
}
