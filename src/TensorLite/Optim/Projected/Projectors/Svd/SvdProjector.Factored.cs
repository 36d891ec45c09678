using TensorLite.Autograd;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Optim.Projected;

public sealed partial class SvdProjector
{
    /// <summary>The exact SVD forms G (on refresh steps only); the randomized one runs on the factors.</summary>
    protected override Tensor ComputeBasis(FactoredGradient g)
    {
        if (!Randomized)
        {
            using var dense = g.ToDense(DType.Float32);
            return ComputeBasis(dense);
        }
        return BasisOf(FactoredRandomizedSvd(g, Rank, generator, oversampling, powerIterations), Side);
    }

    /// <summary>
    /// <see cref="LA.RandomizedSvd"/> of G = dYᵀ·X with the same steps and the same random draws, where every product
    /// with G goes through the factors: G·Ω = dYᵀ·(X·Ω), Gᵀ·Z = Xᵀ·(dY·Z) and Qᵀ·G = (dY·Q)ᵀ·X. Only [m, ℓ], [n, ℓ] and
    /// [ℓ, n] tensors are formed. The two-sided projector (<see cref="TwoSidedSvdProjector"/>) uses it too.
    /// </summary>
    internal static (Tensor U, Tensor S, Tensor Vt) FactoredRandomizedSvd(FactoredGradient g, int rank, Generator generator,
        int oversampling, int powerIterations)
    {
        int m = g.Rows, n = g.Columns;
        int l = Math.Min(rank + oversampling, Math.Min(m, n));
        Tensor q;
        using (var omega = Tensor.RandN([n, l], generator, 1f, g.Backend))
        using (var y = g.Times(omega))
            q = LA.Orthonormalize(y);
        for (int i = 0; i < powerIterations; i++)
        {
            using var z = g.TransposeTimes(q);
            q.Dispose();
            using var qz = LA.Orthonormalize(z);
            using var y = g.Times(qz);
            q = LA.Orthonormalize(y);
        }
        using (q)
        {
            using var b = g.LeftProject(q);
            using var bt = b.T;
            var (qb, rb) = LA.Qr(bt);
            using (qb)
            using (rb)
            {
                using var rbt = rb.T;
                var (ur, s, vrt) = LA.Svd(rbt, rank);
                using (ur)
                using (vrt)
                using (var qbt = qb.T)
                    return (q.MatMul(ur), s, vrt.MatMul(qbt));
            }
        }
    }
}
