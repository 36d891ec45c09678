using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

public sealed partial class OnlinePcaProjector
{
    /// <summary>
    /// OSD refreshes at every step, and its reference rule needs the gradient itself: the first basis is the SVD of the
    /// first gradient and each PCA step fits G/‖G‖_F, whose norm the factors do not give cheaply (through the batch
    /// dimension it costs b²·(m + n), more than forming G when b is large). So OSD forms G from the factors here, one
    /// layer at a time, and projects from the factors otherwise; its memory is that of the dense path for one layer.
    /// </summary>
    public override void RefreshFactored(FactoredGradient g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        using var dense = g.ToDense(DType.Float32);
        Refresh(dense, step);
    }
}
