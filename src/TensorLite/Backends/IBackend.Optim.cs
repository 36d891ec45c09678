namespace TensorLite;

/// <summary>Hyper-parameters of one AdamW update (bias corrections already folded in by the caller).</summary>
public readonly record struct AdamWStepParams(
    float LearningRate, float Beta1, float Beta2, float Eps, float WeightDecay,
    float BiasCorrection1, float BiasCorrection2);

public partial interface IBackend
{
    /// <summary>
    /// One fused, in-place AdamW update of contiguous float32 tensors of equal size:
    /// m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p − lr·wd·p − lr·(m/bc1)/(sqrt(v/bc2)+eps).
    /// </summary>
    void AdamWStep(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStepParams h);
}
