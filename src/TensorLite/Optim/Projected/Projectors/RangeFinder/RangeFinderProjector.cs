using TensorLite.Autograd;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Optim.Projected;

/// <summary>The randomized range finder: an orthonormal basis of G·Ω (left) or Gᵀ·Ω (right), Ω a Gaussian [other, r] drawn
/// from the projector's generator. Its span estimates the top-r singular subspace (exactly it when rank(G) ≤ r).</summary>
public sealed class RangeFinderProjector(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator,
    DType basisDType = DType.Float32)
    : StoredBasisProjector(side, m, n, rank, updateGap, basisDType)
{
    /// <inheritdoc/>
    protected override Tensor ComputeBasis(Tensor g)
    {
        using var oriented = Oriented(g);
        using var omega = Tensor.RandN([oriented.Shape[1], Rank], generator, 1f, g.Backend);
        using var sketch = oriented.MatMul(omega);
        return LA.Orthonormalize(sketch);
    }

    /// <summary>The same sketch through the factors: G·Ω = dYᵀ·(X·Ω) (left) or Gᵀ·Ω = Xᵀ·(dY·Ω) (right).</summary>
    protected override Tensor ComputeBasis(FactoredGradient g)
    {
        int other = Side == ProjectionSide.Left ? Columns : Rows;
        using var omega = Tensor.RandN([other, Rank], generator, 1f, g.Backend);
        using var sketch = Side == ProjectionSide.Left ? g.Times(omega) : g.TransposeTimes(omega);
        return LA.Orthonormalize(sketch);
    }
}
