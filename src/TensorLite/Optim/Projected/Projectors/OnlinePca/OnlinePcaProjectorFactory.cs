namespace TensorLite.Optim.Projected;

/// <summary>
/// Online Subspace Descent's projection and its own settings: the online PCA's <paramref name="LearningRate"/>, its
/// <paramref name="Optimizer"/> (Adam or SGD on ‖G − P·Pᵀ·G‖²) and whether P is re-orthonormalized by QR after each
/// update. The basis is trained, so it stays float32 whatever basis dtype the options ask for.
/// </summary>
public sealed record OnlinePcaProjectorFactory(float LearningRate = 1e-2f, OnlinePcaOptimizer Optimizer = OnlinePcaOptimizer.Adam,
    bool Orthonormalize = false) : ProjectorFactory
{
    public override ProjectionKind Kind => ProjectionKind.OnlinePca;

    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        new OnlinePcaProjector(side, m, n, rank, generator, LearningRate, Optimizer, Orthonormalize);

    /// <summary>P in float32, and with Adam its two moments of P's shape.</summary>
    public override long PredictStateBytes(ProjectionSide side, int m, int n, int rank, DType basisDType) =>
        4 * ProjectedLength(side, m, n) * rank * (Optimizer == OnlinePcaOptimizer.Adam ? 3 : 1);

    public override void Validate()
    {
        if (!(LearningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), "The online PCA learning rate must be non-negative.");
    }
}
