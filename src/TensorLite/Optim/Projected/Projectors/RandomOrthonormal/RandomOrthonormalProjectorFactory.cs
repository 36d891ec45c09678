namespace TensorLite.Optim.Projected;

/// <summary>FRUGAL's random subspace: a random orthonormal basis redrawn at each refresh.</summary>
public sealed record RandomOrthonormalProjectorFactory : ProjectorFactory
{
    public override ProjectionKind Kind => ProjectionKind.RandomOrthonormal;

    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        new RandomOrthonormalProjector(side, m, n, rank, updateGap, generator, basisDType);

    public override long PredictStateBytes(ProjectionSide side, int m, int n, int rank, DType basisDType) =>
        StoredBasisProjector.PredictStateBytes(ProjectedLength(side, m, n), rank, basisDType);
}
