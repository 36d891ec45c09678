namespace TensorLite.Optim.Projected;

/// <summary>LSP_Offload's learned sparse sketches on both sides of each projected matrix (<see cref="SketchProjector"/>):
/// <paramref name="NonZeros"/> (d) non-zeros per sketch column, refit with <paramref name="FitIterations"/> Adam steps at
/// <paramref name="FitLearningRate"/> whenever a check's relative error is at least <paramref name="FitThreshold"/>.
/// A matrix whose rank r (clamped to min(m, n)) is below d gets d = r. The state is d int32 indices and d float32
/// values per column of each sketch: 8·d·(m + n) bytes.</summary>
public sealed record SketchProjectorFactory(int NonZeros = 4, float FitThreshold = 0.2f, float FitLearningRate = 0.06f, int FitIterations = 100)
    : ProjectorFactory
{
    /// <inheritdoc/>
    public override ProjectionKind Kind => ProjectionKind.Sketch;

    /// <inheritdoc/>
    public override bool IsTwoSided => true;

    /// <summary>d for a matrix of rank <paramref name="rank"/>.</summary>
    public int NonZerosFor(int rank) => Math.Min(NonZeros, rank);

    /// <inheritdoc/>
    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        new SketchProjector(m, n, rank, NonZerosFor(rank), updateGap, FitIterations, FitLearningRate, FitThreshold, generator);

    /// <inheritdoc/>
    public override long PredictStateBytes(ProjectionSide side, int m, int n, int rank, DType basisDType) => 8L * NonZerosFor(rank) * ((long)m + n);

    /// <inheritdoc/>
    public override void Validate()
    {
        if (NonZeros < 1) throw new ArgumentOutOfRangeException(nameof(NonZeros), $"The sketch's non-zeros per column d must be at least 1, got {NonZeros}.");
        if (FitIterations < 0) throw new ArgumentOutOfRangeException(nameof(FitIterations), $"The sketch fit's iterations must be non-negative, got {FitIterations}.");
        if (!(float.IsFinite(FitLearningRate) && FitLearningRate > 0))
            throw new ArgumentOutOfRangeException(nameof(FitLearningRate), $"The sketch fit's learning rate must be a positive finite number, got {FitLearningRate}.");
        if (!(float.IsFinite(FitThreshold) && FitThreshold >= 0))
            throw new ArgumentOutOfRangeException(nameof(FitThreshold), $"The sketch fit's error threshold must be a non-negative finite number, got {FitThreshold}.");
    }
}
