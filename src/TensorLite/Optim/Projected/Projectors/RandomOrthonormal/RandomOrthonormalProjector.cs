using TensorLite.Autograd;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Optim.Projected;

/// <summary>FRUGAL's random subspace: a random orthonormal basis (QR of a Gaussian [dim, r]) redrawn at each refresh;
/// the gradient is not looked at.</summary>
public sealed class RandomOrthonormalProjector(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator,
    DType basisDType = DType.Float32)
    : StoredBasisProjector(side, m, n, rank, updateGap, basisDType)
{
    /// <inheritdoc/>
    protected override Tensor ComputeBasis(Tensor g) => Draw(g.Backend);

    /// <inheritdoc/>
    protected override Tensor ComputeBasis(FactoredGradient g) => Draw(g.Backend);

    private Tensor Draw(IBackend backend)
    {
        using var gauss = Tensor.RandN([Dim, Rank], generator, 1f, backend);
        return LA.Orthonormalize(gauss);
    }
}
