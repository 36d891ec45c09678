using TensorLite.Autograd;
using TensorLite.Memory;

namespace TensorLite.Optim.Projected;

/// <summary>
/// What a data-parallel run sums across its ranks for each parameter. Projection is linear, so the sum of the ranks'
/// projected gradients is the projection of the summed gradient: between refreshes a parameter that takes factored
/// gradients sends R (r×n or m×r, whatever <see cref="IProjector.ProjectFactored"/> returns — nothing is specific to a
/// projector kind) instead of G. A refresh must see the whole step's summed G, so every rank computes the same basis or
/// selection from the same bits with the same random stream; on its refresh steps the parameter sends dense G, and the
/// step then refreshes from it exactly as a single process with accumulated micro-batches does. What needs G at every
/// step — residual rules (FRUGAL), OSD (its basis follows every gradient), dense parameters — sends dense G.
/// </summary>
public sealed partial class ProjectedOptimizer
{
    /// <summary>
    /// Makes the gradient of parameter <paramref name="index"/> ready to be summed across ranks and returns the tensor to
    /// sum in place (null when it has none). A factored gradient is folded into its projection when the projection stays
    /// fixed for this step (its Folded part is returned), or formed densely into <see cref="Tensor.Grad"/> when a refresh
    /// is due; a dense gradient is returned as it is. Call it for every parameter, in the same order on every rank, before
    /// the sum; the step that follows the sum then needs no <see cref="PrepareFactored"/>.
    /// </summary>
    public Tensor? GradientToAllReduce(int index)
    {
        var p = Parameters[index];
        if (p.FactoredGrad is not { } f) return p.Grad;
        var s = _slots[index];
        using var noGrad = GradMode.NoGrad();
        using var workspace = MemoryLedger.Categorize(MemoryCategory.Workspace);
        if (ProjectsFactored(s) && !RefreshPending(s))
        {
            if (f.Pairs.Count > 0) f.Fold(s.Projector!.ProjectFactored(f), (s.Projector, s.Projector.RefreshCount));
            return f.Folded;
        }
        // A refresh is due (earlier micro-batches were formed densely already, so nothing is folded): dense G.
        var dense = f.ToDense(p.DType);
        f.Dispose();
        p.FactoredGrad = null;
        p.Grad = dense.Persist().Tag(MemoryCategory.Gradients);
        return p.Grad;
    }

    /// <summary>
    /// The float32 elements <see cref="GradientToAllReduce"/> returns for parameter <paramref name="index"/> at its
    /// 0-based step <paramref name="step"/>, when the run takes factored gradients: R's for a projected matrix whose
    /// projection is not refreshed at that step — the size of the R its last step used, whatever the projector's shape
    /// of R — and the parameter's element count otherwise. Valid after the parameter's first step (which refreshes).
    /// </summary>
    public long AllReducedElements(int index, long step)
    {
        var s = _slots[index];
        if (!ProjectsFactored(s) || s.Projector!.IsRefreshDue(step) || s.ProjectedElements == 0) return s.Parameter.Numel;
        return s.ProjectedElements;
    }
}
