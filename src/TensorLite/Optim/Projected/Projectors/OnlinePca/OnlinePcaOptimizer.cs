namespace TensorLite.Optim.Projected;

/// <summary>How <see cref="OnlinePca"/> updates its projection from the reconstruction-loss gradient.</summary>
public enum OnlinePcaOptimizer
{
    /// <summary>P ← P − lr·∇.</summary>
    Sgd,
    /// <summary>AdamW on P (bias-corrected, decoupled weight decay as configured), the OSD reference's default
    /// (<c>--proj_type continuous</c>: torch.optim.AdamW).</summary>
    Adam,
}
