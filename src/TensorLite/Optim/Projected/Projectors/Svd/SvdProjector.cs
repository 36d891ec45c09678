using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Optim.Projected;

/// <summary>GaLore's projection: the top-r singular vectors of G, left (U_r) for a left projector and right (V_r) for a
/// right one, by the exact SVD or the randomized one (Halko et al., drawing its sketch from the optimizer's generator).</summary>
public sealed partial class SvdProjector(ProjectionSide side, int m, int n, int rank, int updateGap, bool randomized,
    Generator generator, int oversampling = 10, int powerIterations = 2, DType basisDType = DType.Float32)
    : StoredBasisProjector(side, m, n, rank, updateGap, basisDType)
{
    public bool Randomized { get; } = randomized;

    protected override Tensor ComputeBasis(Tensor g)
    {
        return SideBasis(Randomized ? LA.RandomizedSvd(g, Rank, generator, oversampling, powerIterations) : LA.Svd(g, Rank));
    }

    /// <summary>U_r for a left projector, V_r (contiguous) for a right one; disposes the rest of the decomposition.</summary>
    private Tensor SideBasis((Tensor U, Tensor S, Tensor Vt) svd)
    {
        var (u, s, vt) = svd;
        s.Dispose();
        if (Side == ProjectionSide.Left)
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
