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
    /// Called as a parameter's gradient of a micro-batch becomes final, outside per-layer updates. When the projection
    /// is fixed for the coming step, the factor pairs are replaced by their projection at once (X and dY are freed;
    /// micro-batches add in the projected space). When a refresh is due, the last micro-batch's pairs are kept
    /// (<paramref name="lastMicroBatch"/>) for <see cref="PrepareFactored"/> to refresh from, and earlier ones form the
    /// dense gradient — the refresh needs the whole step's gradient, exactly as the dense path accumulates it.
    /// </summary>
    public void Fold(int index, bool lastMicroBatch)
    {
        var p = Parameters[index];
        var f = p.FactoredGrad;
        if (f == null || f.Pairs.Count == 0) return;
        var s = _slots[index];
        using var noGrad = GradMode.NoGrad();
        using var workspace = MemoryLedger.Categorize(MemoryCategory.Workspace);
        if (ProjectsFactored(s) && !RefreshPending(s))
        {
            f.Fold(s.Projector!.ProjectFactored(f), (s.Projector, s.Projector.RefreshCount));
            return;
        }
        if (ProjectsFactored(s) && lastMicroBatch) return;
        var dense = f.ToDense(p.DType);
        f.Dispose();
        p.FactoredGrad = null;
        p.Grad = dense.Persist().Tag(MemoryCategory.Gradients);
    }

    /// <summary>
    /// Before a step that is not taken inside backward: refreshes the projection from the factors kept by
    /// <see cref="Fold"/> and folds them, so every factored gradient is a projected one when its norm is taken (gradient
    /// clipping) and the step itself (which then does not refresh again) gives what a per-layer update gives.
    /// </summary>
    public void PrepareFactored(int index)
    {
        var f = Parameters[index].FactoredGrad;
        if (f == null || f.Pairs.Count == 0) return;
        var s = _slots[index];
        using (GradMode.NoGrad())
        using (MemoryLedger.Categorize(MemoryCategory.Workspace))
        using (TensorScope.Enter())
        {
            long t = s.ParamSteps;
            if (RefreshPending(s))
            {
                RefreshProjector(s, () => s.Projector!.RefreshFactored(f, t));
                s.RefreshedFor = t;
            }
            f.Fold(s.Projector!.ProjectFactored(f).Persist(), (s.Projector, s.Projector.RefreshCount));
        }
        TagState(s);
    }

    /// <summary>Whether the slot's projection must be refreshed before its next step (and has not been yet).</summary>
    private static bool RefreshPending(Slot s) => s.Projector!.IsRefreshDue(s.ParamSteps) && s.RefreshedFor != s.ParamSteps;

    /// <inheritdoc/>
    protected override void UpdateFactored(int index, Tensor p, FactoredGradient grad) => InWorkspace(index, p, (s, rounding) =>
    {
        if (ProjectsFactored(s))
        {
            StepFactored(s, p, grad, rounding);
            return;
        }
        using var dense = grad.ToDense(DType.Float32);
        StepSlot(s, p, dense, rounding);
    });

    private void StepFactored(Slot s, Tensor p, FactoredGradient f, ParamRounding rounding)
    {
        float lr = StepLearningRate;
        float decay = 1f - lr * Options.WeightDecay;
        var proj = s.Projector!;
        if (RefreshPending(s))
        {
            if (f.Folded != null) throw new InvalidOperationException($"'{s.Name}' was folded under a projection that is refreshed at this step.");
            long step = s.ParamSteps;
            RefreshProjector(s, () => proj.RefreshFactored(f, step));
        }
        s.ParamSteps++;
        using var r = ProjectedGradient(proj, f);
        s.FactoredNorm = NormBeforeClipping(r, f.Scale);
        float stepSize = lr * Options.Scale;
        WithDirection(s, r, p.Backend, direction =>
        {
            if (proj is SparseProjector sparse) SparseUpdate.Apply(p, sparse, direction, decay, stepSize, rounding);
            else
            {
                using var back = proj.ProjectBack(direction);
                p.Backend.ApplyUpdate(p, back, decay, stepSize, rounding);
            }
            proj.EndStep();
        });
    }

    /// <summary>‖R‖ / scale: the norm of R (which carries the gradient's scale, clipping included) before that scale.</summary>
    private static double NormBeforeClipping(Tensor r, float scale)
    {
        using var sq = r.Square();
        using var sum = sq.Sum();
        return Math.Sqrt(sum.Item()) / scale;
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
