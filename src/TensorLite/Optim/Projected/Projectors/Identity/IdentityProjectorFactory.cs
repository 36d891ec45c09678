namespace TensorLite.Optim.Projected;

/// <summary>P = I: no projection and no projector state (AdamW inside the projected optimizer).</summary>
public sealed record IdentityProjectorFactory : ProjectorFactory
{
    /// <inheritdoc/>
    public override ProjectionKind Kind => ProjectionKind.Identity;

    /// <inheritdoc/>
    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        new IdentityProjector(m, n);

    /// <inheritdoc/>
    public override long PredictStateBytes(ProjectionSide side, int m, int n, int rank, DType basisDType) => 0;
}
