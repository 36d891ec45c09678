namespace TensorLite.Optim.Projected;

/// <summary>GaLore's projection by the exact SVD, or by the randomized SVD with its own sketch settings
/// (<paramref name="Oversampling"/> extra columns, <paramref name="PowerIterations"/> power iterations; the exact SVD
/// ignores them).</summary>
public sealed record SvdProjectorFactory(bool Randomized = false, int Oversampling = 10, int PowerIterations = 2) : StoredBasisProjectorFactory
{
    /// <inheritdoc/>
    public override ProjectionKind Kind => Randomized ? ProjectionKind.RandomizedSvd : ProjectionKind.Svd;

    /// <inheritdoc/>
    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        side == ProjectionSide.Both
            ? new TwoSidedSvdProjector(m, n, rank, updateGap, Randomized, generator, Oversampling, PowerIterations, basisDType)
            : new SvdProjector(side, m, n, rank, updateGap, Randomized, generator, Oversampling, PowerIterations, basisDType);

    /// <summary>GaLore's "full" projection: U_r and V_r of one SVD (<see cref="TwoSidedSvdProjector"/>).</summary>
    public override bool CanProjectBothSides => true;

    /// <inheritdoc/>
    public override void Validate()
    {
        if (Oversampling < 0) throw new ArgumentOutOfRangeException(nameof(Oversampling), "The randomized SVD oversampling must be non-negative.");
        if (PowerIterations < 0) throw new ArgumentOutOfRangeException(nameof(PowerIterations), "The randomized SVD power iterations must be non-negative.");
    }
}
