using TensorLite.Autograd;

namespace TensorLite.LinearAlgebra;

public static partial class Linalg
{
    private static void RequirePcaOperands(Tensor p, Tensor g, string op)
    {
        RequireMatrix(p, op, "p");
        RequireMatrix(g, op, "g");
        RequireSameBackend(p, g, op);
        if (p.Shape[0] != g.Shape[0])
            throw new ShapeMismatchException($"{op}: the projection p {ShapeMath.Format(p.Shape)} and the matrix g {ShapeMath.Format(g.Shape)} must have the same number of rows.");
    }

    /// <summary>The reconstruction loss ‖G − P·Pᵀ·G‖²_F of projecting g [m, n] onto the span of p [m, r].</summary>
    public static double ReconstructionLoss(Tensor p, Tensor g)
    {
        RequirePcaOperands(p, g, "reconstruction_loss");
        using var noGrad = GradMode.NoGrad();
        using var pt = p.T;
        using var w = pt.MatMul(g);
        using var pw = p.MatMul(w);
        using var e = g - pw;
        using var e2 = e.Square();
        using var sum = e2.Sum();
        return sum.Item();
    }

    /// <summary>
    /// The gradient of L(P) = ‖G − P·Pᵀ·G‖²_F with respect to p [m, r], in closed form:
    /// with W = Pᵀ·G and E = G − P·W, ∇L = −2·(E·Wᵀ + G·(Pᵀ·E)ᵀ). (dL = −2⟨E, dP·W + P·dPᵀ·G⟩; the first term gives
    /// E·Wᵀ, the second G·Eᵀ·P.) When P has orthonormal columns PᵀE = 0 and this is −2·(I − PPᵀ)·G·Gᵀ·P, Oja's
    /// subspace direction. Cost: four [m, n]×r products, no m×m matrix.
    /// </summary>
    public static Tensor OnlinePcaGradient(Tensor p, Tensor g)
    {
        RequirePcaOperands(p, g, "online_pca_gradient");
        using var noGrad = GradMode.NoGrad();
        using var pt = p.T;
        using var w = pt.MatMul(g);          // [r, n]
        using var pw = p.MatMul(w);          // [m, n]
        using var e = g - pw;                // [m, n]
        using var wt = w.T;
        using var t1 = e.MatMul(wt);         // [m, r]
        using var pte = pt.MatMul(e);        // [r, n]
        using var ptet = pte.T;
        using var t2 = g.MatMul(ptet);       // [m, r]
        using var sum = t1 + t2;
        return sum * -2f;
    }

    /// <summary>
    /// One plain gradient step of Online Subspace Descent's projection update (Liang et al. 2024): returns
    /// P − lr·∇‖G − P·Pᵀ·G‖²_F as a new [m, r] tensor, re-orthonormalized by QR when <paramref name="reorthonormalize"/>.
    /// The stateful online PCA of Online Subspace Descent (TensorLite.Optim.Projected.OnlinePca) runs the same update through Adam.
    /// </summary>
    public static Tensor OnlinePcaStep(Tensor p, Tensor g, float learningRate, bool reorthonormalize = false)
    {
        using var noGrad = GradMode.NoGrad();
        using var grad = OnlinePcaGradient(p, g);
        using var step = grad * learningRate;
        var next = p - step;
        if (!reorthonormalize) return next;
        using (next) return Orthonormalize(next);
    }
}
