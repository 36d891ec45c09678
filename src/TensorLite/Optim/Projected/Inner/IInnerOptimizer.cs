namespace TensorLite.Optim.Projected;

/// <summary>
/// The optimizer that runs on the small projected gradient R (and, inside the same <see cref="ProjectedOptimizer"/>,
/// on the parameters that are not projected). It is a factory of per-tensor states; a state turns a gradient into a
/// direction N (the update before the learning rate) and keeps whatever moments it needs for R's shape only.
/// Implemented: float32 AdamW (<see cref="AdamWInner"/>, the default), block-wise 8-bit AdamW
/// (<see cref="AdamW8bitInner"/>) and Adafactor (<see cref="AdafactorInner"/>).
/// </summary>
public interface IInnerOptimizer
{
    /// <summary>A short name for logs and docs ("adamw").</summary>
    string Name { get; }

    /// <summary>A fresh (zero) state for gradients of <paramref name="shape"/>.</summary>
    IInnerState CreateState(int[] shape, IBackend backend);

    /// <summary>The bytes <see cref="CreateState"/>'s state holds once it has taken a step (equals its
    /// <see cref="IInnerState.StateBytes"/>).</summary>
    long PredictStateBytes(ReadOnlySpan<int> shape);
}
