namespace TensorLite.Optim.Projected;

/// <summary>The factories of projectors that store their basis (<see cref="StoredBasisProjector"/>): the state is the
/// basis [d, r] in the options' basis dtype, d = m for left and n for right; a two-sided ("full") projection keeps
/// both, [m, r] and [n, r].</summary>
public abstract record StoredBasisProjectorFactory : ProjectorFactory
{
    /// <inheritdoc/>
    public sealed override long PredictStateBytes(ProjectionSide side, int m, int n, int rank, DType basisDType) =>
        basisDType.SizeInBytes() * ProjectedLength(side, m, n) * rank;
}
