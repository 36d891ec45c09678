namespace TensorLite.Optim.Projected;

/// <summary>FRUGAL's random subspace: a random orthonormal basis redrawn at each refresh.</summary>
public sealed record RandomOrthonormalProjectorFactory : StoredBasisProjectorFactory
{
    /// <inheritdoc/>
    public override ProjectionKind Kind => ProjectionKind.RandomOrthonormal;

    /// <inheritdoc/>
    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        new RandomOrthonormalProjector(side, m, n, rank, updateGap, generator, basisDType);
}
