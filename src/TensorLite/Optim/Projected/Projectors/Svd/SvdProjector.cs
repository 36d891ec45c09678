using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Optim.Projected;

/// <summary>GaLore's projection: the top-r singular vectors of G, left (U_r) for a left projector and right (V_r) for a
/// right one, by the exact SVD or the randomized one (Halko et al., drawing its sketch from the optimizer's generator).</summary>
public sealed partial class SvdProjector(ProjectionSide side, int m, int n, int rank, int updateGap, bool randomized,
    Generator generator, int oversampling = 10, int powerIterations = 2, DType basisDType = DType.Float32)
    : StoredBasisProjector(side, m, n, rank, updateGap, basisDType)
{
    /// <summary>Whether the basis comes from the randomized SVD instead of the exact one.</summary>
    public bool Randomized { get; } = randomized;

    /// <inheritdoc/>
    protected override Tensor ComputeBasis(Tensor g) => Randomized
        ? BasisOf(LA.RandomizedSvd(g, Rank, generator, oversampling, powerIterations), Side)
        : TopSingularBasis(g, Rank, Side);

    /// <summary>The top-<paramref name="rank"/> singular vectors of g [m, n] on <paramref name="side"/>: U_r [m, r] for
    /// left, V_r [n, r] for right (a new contiguous tensor). OSD starts its basis from this too.</summary>
    public static Tensor TopSingularBasis(Tensor g, int rank, ProjectionSide side) => BasisOf(LA.Svd(g, rank), side);

    private static Tensor BasisOf((Tensor U, Tensor S, Tensor Vt) svd, ProjectionSide side)
    {
        var (u, s, vt) = svd;
        s.Dispose();
        if (side == ProjectionSide.Left)
        {
            vt.Dispose();
            return u;
        }
        u.Dispose();
        using (vt)
        using (var v = vt.T)
            return v.Clone();
    }
}
