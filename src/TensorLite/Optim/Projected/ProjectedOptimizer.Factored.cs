using TensorLite.Autograd;
using TensorLite.Memory;

namespace TensorLite.Optim.Projected;

/// <summary>
/// Updates from gradients kept as factors (<see cref="FactoredGradient"/>, G = dYᵀ·X): the projected gradient R is
/// computed from the factors by the projector (only the selected rows for a sparse one), so the m×n gradient is formed
/// only where a rule needs the whole of it — an exact SVD or a norm-based selection on its refresh steps, a residual
/// rule (FRUGAL), a dense or identity parameter. A sparse projector's update writes only the selected rows (columns),
/// decoupled weight decay included; the other rows keep their bits.
/// </summary>
public sealed partial class ProjectedOptimizer
{
    /// <summary>Whether the parameter at <paramref name="index"/> gains from a factored gradient: a projected matrix with
    /// a real projection and no residual rule (which needs all of G anyway).</summary>
    public bool TakesFactoredGradient(int index) => ProjectsFactored(_slots[index]);

    private bool ProjectsFactored(Slot s) =>
        s.Projected && s.Projector is { IsIdentity: false } && Options.Residual == ResidualRule.Drop;

    /// <summary>The Frobenius norm of the projected gradient R that the last factored update of this parameter used,
    /// before gradient clipping scaled it (0 when none). This is the gradient norm a factored parameter reports: the
    /// norm of the full G would cost the whole dW product (or b²·(m + n) through the Gram matrices).</summary>
    public double FactoredGradNorm(int index) => _slots[index].FactoredNorm;

    /// <summary>
    /// Between micro-batches: replaces the parameter's factor pairs by their projection when the projection is fixed
    /// for the coming step (so X and dY are freed at once and micro-batches add in the projected space); otherwise —
    /// a refresh is due (it needs the step's whole gradient), or the parameter is not projected from factors — forms
    /// the dense gradient, exactly today's accumulation. Nothing happens without factors.
    /// </summary>
    public void Fold(int index)
    {
        var p = Parameters[index];
        var f = p.FactoredGrad;
        if (f == null || f.Pairs.Count == 0) return;
        var s = _slots[index];
        using var noGrad = GradMode.NoGrad();
        using var workspace = MemoryLedger.Categorize(MemoryCategory.Workspace);
        if (ProjectsFactored(s) && !s.Projector!.IsRefreshDue(s.ParamSteps))
        {
            f.Fold(s.Projector.ProjectFactored(f), (s.Projector, s.Projector.RefreshCount));
            return;
        }
        var dense = f.ToDense(p.DType);
        f.Dispose();
        p.FactoredGrad = null;
        p.Grad = dense.Persist().Tag(MemoryCategory.Gradients);
    }

    protected override void UpdateFactored(int index, Tensor p, FactoredGradient grad)
    {
        var s = _slots[index];
        if (!p.IsContiguous)
            throw new TensorLiteException($"The projected optimizer updates parameters in place and needs contiguous ones; '{s.Name}' is a strided view.");
        using (GradMode.NoGrad())
        using (MemoryLedger.Categorize(MemoryCategory.Workspace))
        using (TensorScope.Enter())
        {
            if (ProjectsFactored(s)) StepFactored(s, p, grad, RoundingFor(index));
            else
            {
                using var dense = grad.ToDense(DType.Float32);
                StepSlot(s, p, dense, RoundingFor(index));
            }
        }
        TagState(s);
    }

    private void StepFactored(Slot s, Tensor p, FactoredGradient f, ParamRounding rounding)
    {
        float lr = StepLearningRate;
        float decay = 1f - lr * Options.WeightDecay;
        var proj = s.Projector!;
        long t = s.ParamSteps++;
        if (proj.IsRefreshDue(t))
        {
            if (f.Folded != null) throw new InvalidOperationException($"'{s.Name}' was folded under a projection that is refreshed at this step.");
            RefreshProjector(s, () => proj.RefreshFactored(f, t));
        }
        using var r = ProjectedGradient(proj, f);
        using (var sq = r.Square())
        using (var sum = sq.Sum())
            s.FactoredNorm = Math.Sqrt(sum.Item()) / f.Scale;
        using var direction = InnerDirection(s, r, p.Backend);
        if (proj is SparseProjector sparse)
        {
            SparseUpdate.Apply(p, sparse, direction, decay, lr * Options.Scale, rounding);
            return;
        }
        using var back = proj.ProjectBack(direction);
        p.Backend.ApplyUpdate(p, back, decay, lr * Options.Scale, rounding);
    }

    /// <summary>R = Scale·(Folded + project(pairs)), a new float32 tensor.</summary>
    private static Tensor ProjectedGradient(IProjector proj, FactoredGradient f)
    {
        if (f.Pairs.Count == 0) return f.Folded! * f.Scale;
        var r = proj.ProjectFactored(f);
        if (f.Folded != null)
        {
            using var folded = f.Folded * f.Scale;
            r.Backend.Binary(BinaryOp.Add, r, folded, r);
        }
        return r;
    }
}
