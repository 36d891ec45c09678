using TensorLite.Autograd;

namespace TensorLite.Training;

/// <summary>The global gradient norm of a set of parameters, clipping by it, and finding the first non-finite value.</summary>
public static class GradientClipping
{
    /// <summary>The L2 norm of all gradients together (computed in double across parameters). Gradients may be
    /// float32, bfloat16 or float16.</summary>
    public static double GlobalNorm(IEnumerable<Tensor> parameters)
    {
        using var noGrad = GradMode.NoGrad();
        double sum = 0;
        foreach (var p in parameters)
        {
            if (p.FactoredGrad is { } factored)
            {
                sum += FactoredSquaredNorm(factored);
                continue;
            }
            if (p.Grad == null) continue;
            if (p.Grad.DType != DType.Float32)
            {
                // bfloat16/float16 gradients: squares summed in float32 chunks and double overall, no float32 copy
                using var c = p.Grad.Contiguous();
                sum += p.Backend.SumOfSquares(c);
                continue;
            }
            using var sq = p.Grad.Square();
            using var s = sq.Sum();
            sum += s.Item();
        }
        return Math.Sqrt(sum);
    }

    /// <summary>Scales all gradients so their global norm is at most <paramref name="maxNorm"/>; returns the norm before
    /// clipping. Half-precision gradients are scaled in float32 and rounded to nearest even.</summary>
    public static double ClipGlobalNorm(IReadOnlyList<Tensor> parameters, float maxNorm)
    {
        double norm = GlobalNorm(parameters);
        if (maxNorm > 0 && norm > maxNorm && double.IsFinite(norm))
        {
            float scale = (float)(maxNorm / (norm + 1e-6));
            foreach (var p in parameters)
            {
                if (p.Grad != null) p.Backend.Unary(UnaryOp.Affine, p.Grad, p.Grad, scale, 0f);
                if (p.FactoredGrad is { } factored) factored.Scale *= scale; // the factors are shared; only the scale changes
            }
        }
        return norm;
    }

    /// <summary>
    /// The squared norm a factored gradient contributes: that of its projected part (<see cref="FactoredGradient.Folded"/>,
    /// what the optimizer will use), times its scale. The trainer folds every factored gradient before clipping, so
    /// pairs are left only when the projection is refreshed at this step, and then the gradient is dense instead. The
    /// dense ‖G‖ would cost the m·n·b product this path avoids; a projection with orthonormal columns (or a selection)
    /// never increases the norm, so clipping by ‖R‖ never clips more than clipping by ‖G‖ would.
    /// </summary>
    private static double FactoredSquaredNorm(FactoredGradient g)
    {
        if (g.Pairs.Count > 0)
            throw new InvalidOperationException("A factored gradient must be folded into its projection before its norm is taken.");
        if (g.Folded == null) return 0;
        using var sq = g.Folded.Square();
        using var s = sq.Sum();
        return s.Item() * (double)g.Scale * g.Scale;
    }

    /// <summary>The first parameter (by name) whose value or gradient has a NaN or infinity, or null.</summary>
    public static string? FirstNonFinite(IEnumerable<(string Name, Tensor Parameter)> parameters, bool gradients)
    {
        foreach (var (name, p) in parameters)
        {
            if (gradients && p.FactoredGrad is { } factored)
            {
                if (!factored.FactorsAreFinite()) return $"the gradient of {name}";
                continue;
            }
            var t = gradients ? p.Grad : p;
            if (t == null) continue;
            foreach (var v in t.ToArray())
                if (!float.IsFinite(v)) return gradients ? $"the gradient of {name}" : name;
        }
        return null;
    }
}
