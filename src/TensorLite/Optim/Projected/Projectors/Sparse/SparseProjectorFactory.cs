using TensorLite.LinearAlgebra;

namespace TensorLite.Optim.Projected;

/// <summary>GRASS's sparse projection (and FRUGAL's columns and blocks): r rows or columns picked by
/// <paramref name="Selection"/>; the state is their r int32 indices.</summary>
public sealed record SparseProjectorFactory(RowSelection Selection = RowSelection.TopNorm) : ProjectorFactory
{
    public override ProjectionKind Kind => ProjectionKind.Sparse;

    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        new SparseProjector(side, m, n, rank, updateGap, Selection, generator);

    public override long PredictStateBytes(ProjectionSide side, int m, int n, int rank, DType basisDType) => 4L * rank;

    public override void Validate()
    {
        if (Selection is not (RowSelection.TopNorm or RowSelection.NormProportional or RowSelection.NormSquaredProportional
            or RowSelection.Uniform or RowSelection.Block))
            throw new ArgumentOutOfRangeException(nameof(Selection), $"Unknown row selection {Selection}.");
    }
}
