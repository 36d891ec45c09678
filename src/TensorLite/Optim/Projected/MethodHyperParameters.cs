namespace TensorLite.Optim.Projected;

/// <summary>The optimizer numbers a method's reference pre-trains with (see <see cref="ProjectedOptions.HyperParametersOf"/>):
/// the peak learning rate, decoupled weight decay and Adam's β1, β2, ε.</summary>
public sealed record MethodHyperParameters(float LearningRate, float WeightDecay, float Beta1, float Beta2, float Eps);
