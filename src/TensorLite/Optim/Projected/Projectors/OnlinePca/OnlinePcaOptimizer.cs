namespace TensorLite.Optim.Projected;

/// <summary>How <see cref="OnlinePca"/> updates its projection from the reconstruction-loss gradient.</summary>
public enum OnlinePcaOptimizer
{
    /// <summary>P ← P − lr·∇.</summary>
    Sgd,
    /// <summary>Adam on P (bias-corrected, no weight decay), as Online Subspace Descent suggests.</summary>
    Adam,
}
