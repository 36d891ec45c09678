using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>
/// LSP_Offload's sketch learning: the relative error f = ‖P_l·G·P_r − G‖_F / ‖G‖_F of compressing G [m, n] with a left
/// sketch S_l [r, m] and a right one S_r [r, n] and expanding it back (P_l = S_lᵀS_l, P_r = S_rᵀS_r), its gradient with
/// respect to the sketches' values, and a fixed number of Adam steps on the values (the pattern stays fixed).
/// <para>
/// The gradient, with E = P_l·G·P_r − G and K = E/(‖E‖·‖G‖) = ∂f/∂E, is by the chain rule through dP = dSᵀS + SᵀdS:
/// ∇S_l = (S_l·G·P_r)·Kᵀ + (S_l·K)·(G·P_r)ᵀ and ∇S_r = (S_r·Gᵀ·P_l)·K + (S_r·Kᵀ)·(P_l·G); a value's gradient is the
/// entry of ∇S at its position. Every product goes through <see cref="SparseSketch"/>, so one evaluation costs
/// O(d·m·n) plus element-wise passes over m×n; no r×m, r×n or m×m matrix is formed.
/// </para>
/// </summary>
public static class SketchFit
{
    /// <summary>f for the sketches as they are (0 when G is zero: there is nothing to fit).</summary>
    public static double Error(Tensor g, SparseSketch left, SparseSketch right) => Evaluate(g, left, right, withGradient: false).Error;

    /// <summary>f and its gradients with respect to the left and right values ([d, m] and [d, n], new tensors the caller
    /// owns; zeros when f has no gradient because G or E is zero).</summary>
    public static (double Error, Tensor LeftGrad, Tensor RightGrad) ErrorAndGradient(Tensor g, SparseSketch left, SparseSketch right)
    {
        var (error, l, r) = Evaluate(g, left, right, withGradient: true);
        return (error, l!, r!);
    }

    /// <summary>Runs <paramref name="iterations"/> Adam steps (β 0.9/0.999, ε 1e-8, bias-corrected, no weight decay, as
    /// the reference's torch.optim.Adam) on both sketches' values at <paramref name="learningRate"/>, with fresh moments
    /// (the reference makes a new optimizer for every fit). Returns the error after the last step.</summary>
    public static double Fit(Tensor g, SparseSketch left, SparseSketch right, int iterations, float learningRate)
    {
        using var noGrad = GradMode.NoGrad();
        var adam = new AdamWInner();
        using var leftMoments = adam.CreateMoments(left.Values.ShapeArray, left.Values.Backend, category: null);
        using var rightMoments = adam.CreateMoments(right.Values.ShapeArray, right.Values.Backend, category: null);
        for (int step = 1; step <= iterations; step++)
        {
            var (_, gl, gr) = ErrorAndGradient(g, left, right);
            using (gl)
            using (gr)
            {
                leftMoments.Apply(left.Values, gl, learningRate, 0f, step, default);
                rightMoments.Apply(right.Values, gr, learningRate, 0f, step, default);
            }
        }
        return Error(g, left, right);
    }

    /// <summary>f and, when asked, its value gradients. At most four m×n float32 buffers are alive at once (K, G·P_r or
    /// P_l·G, and a value gradient's two temporaries), besides G itself.</summary>
    private static (double Error, Tensor? LeftGrad, Tensor? RightGrad) Evaluate(Tensor g, SparseSketch left, SparseSketch right, bool withGradient)
    {
        using var noGrad = GradMode.NoGrad();
        using var scope = TensorScope.Enter();
        using var gc = g.DType == DType.Float32 ? g.ContiguousNoGrad() : g.To(DType.Float32);
        var backend = gc.Backend;
        double gNorm = Math.Sqrt(backend.SumOfSquares(gc));
        using var u = left.Compress(gc, 0);       // S_l·G          [r, n]
        using var v = right.Compress(u, 1);       // S_l·G·S_rᵀ     [r, r]
        using var w = left.Expand(v, 0);          // P_l·G·S_rᵀ     [m, r]
        using var k = right.Expand(w, 1);         // P_l·G·P_r      [m, n], becomes E, then K
        backend.Binary(BinaryOp.Sub, k, gc, k);
        double eNorm = Math.Sqrt(backend.SumOfSquares(k));
        double error = gNorm > 0 ? eNorm / gNorm : 0;
        if (!withGradient) return (error, null, null);
        if (!(gNorm > 0 && eNorm > 0))
            return (error, Tensor.Zeros(left.Values.Shape, DType.Float32, backend).Persist(), Tensor.Zeros(right.Values.Shape, DType.Float32, backend).Persist());
        backend.Unary(UnaryOp.Affine, k, k, (float)(1.0 / (eNorm * gNorm)), 0f);
        // Left: (S_l·G·P_r)·Kᵀ + (S_l·K)·(G·P_r)ᵀ.
        Tensor leftGrad;
        using (var a = right.Expand(v, 1))        // S_l·G·P_r      [r, n]
        using (var sk = left.Compress(k, 0))      // S_l·K          [r, n]
        using (var gs = right.Compress(gc, 1))    // G·S_rᵀ         [m, r]
        using (var gp = right.Expand(gs, 1))      // G·P_r          [m, n]
        using (var l1 = left.ValueGradient(a, k, 0))
        using (var l2 = left.ValueGradient(sk, gp, 0))
            leftGrad = (l1 + l2).Persist();
        // Right: (P_l·G·S_rᵀ)ᵀ·K + (K·S_rᵀ)ᵀ·(P_l·G).
        Tensor rightGrad;
        using (var ks = right.Compress(k, 1))     // K·S_rᵀ         [m, r]
        using (var pg = left.Expand(u, 0))        // P_l·G          [m, n]
        using (var r1 = right.ValueGradient(w, k, 1))
        using (var r2 = right.ValueGradient(ks, pg, 1))
            rightGrad = (r1 + r2).Persist();
        return (error, leftGrad, rightGrad);
    }
}
