namespace TensorLite.Optim.Projected;

/// <summary>The randomized range finder's projection (one GEMM and one thin QR per refresh).</summary>
public sealed record RangeFinderProjectorFactory : StoredBasisProjectorFactory
{
    /// <inheritdoc/>
    public override ProjectionKind Kind => ProjectionKind.RangeFinder;

    /// <inheritdoc/>
    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        new RangeFinderProjector(side, m, n, rank, updateGap, generator, basisDType);
}
