using TensorLite.LinearAlgebra;

namespace TensorLite.Optim.Projected;

/// <summary>GRASS's sparse projection (and FRUGAL's columns and blocks): r rows or columns picked by
/// <paramref name="Selection"/>. A sampled selection (norm, norm², uniform) may be <paramref name="Rescaled"/> by
/// ρ_j = 1/√(r·q_j) and drawn <paramref name="WithReplacement"/> (<see cref="RowSampler"/>); the state is the r int32
/// indices, and with re-scaling their r float32 scales.</summary>
public sealed record SparseProjectorFactory(RowSelection Selection = RowSelection.TopNorm, bool Rescaled = false, bool WithReplacement = false)
    : ProjectorFactory
{
    /// <inheritdoc/>
    public override ProjectionKind Kind => ProjectionKind.Sparse;

    /// <summary>Whether the selection is drawn by <see cref="RowSampler"/> (re-scaled or with replacement).</summary>
    public bool Sampled => Rescaled || WithReplacement;

    /// <inheritdoc/>
    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        new SparseProjector(side, m, n, rank, updateGap, Selection, generator, Rescaled, WithReplacement);

    /// <inheritdoc/>
    public override long PredictStateBytes(ProjectionSide side, int m, int n, int rank, DType basisDType) => (Rescaled ? 8L : 4L) * rank;

    /// <inheritdoc/>
    public override void Validate()
    {
        if (Selection is not (RowSelection.TopNorm or RowSelection.NormProportional or RowSelection.NormSquaredProportional
            or RowSelection.Uniform or RowSelection.Block))
            throw new ArgumentOutOfRangeException(nameof(Selection), $"Unknown row selection {Selection}.");
        if (Sampled && Selection is RowSelection.TopNorm or RowSelection.Block)
            throw new ArgumentException($"Re-scaling and sampling with replacement apply to the sampled selections (norm, norm2, uniform), not {Selection}.", nameof(Selection));
    }
}
