using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

public sealed partial class OnlinePcaProjector
{
    /// <summary>
    /// The online-PCA step from the factors. For the oriented gradient A (G for left, Gᵀ for right) the dense gradient
    /// −2·(E·Wᵀ + A·(Pᵀ·E)ᵀ) with W = Pᵀ·A, E = A − P·W expands to −2·(2K − P·(Pᵀ·K) − K·(Pᵀ·P)) with K = A·Aᵀ·P, so
    /// only K needs the layer's data: two products through the b dimension (A·Aᵀ·P = dYᵀ·(X·(Xᵀ·(dY·P))) for left),
    /// everything else is [dim, r] and r×r.
    /// </summary>
    public override void RefreshFactored(FactoredGradient g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        var pca = Prepare(g.Backend);
        var p = pca.Projection;
        using var k = OrientedGram(g, p);
        using var pt = p.T;
        using var ptk = pt.MatMul(k);
        using var ptp = pt.MatMul(p);
        using var pPtk = p.MatMul(ptk);
        using var kPtp = k.MatMul(ptp);
        using var twoK = k * 2f;
        using var a = twoK - pPtk;
        using var b = a - kPtp;
        using var grad = b * -2f;
        pca.Step(grad);
        RefreshCount++;
    }

    /// <summary>A·Aᵀ·P for the oriented gradient A, through the factors.</summary>
    private Tensor OrientedGram(FactoredGradient g, Tensor p)
    {
        if (Side == ProjectionSide.Left)
        {
            using var gtp = g.TransposeTimes(p); // Gᵀ·P [n, r]
            return g.Times(gtp);                 // G·Gᵀ·P [m, r]
        }
        using var gp = g.Times(p);               // G·P [m, r]
        return g.TransposeTimes(gp);             // Gᵀ·G·P [n, r]
    }
}
