namespace TensorLite.Optim.Lora;

/// <summary>What a ReLoRA restart does to the adapters' Adam moments (the reference's mutually exclusive
/// <c>--reset_optimizer_on_relora</c>, <c>--optimizer_random_pruning</c> and <c>--optimizer_magnitude_pruning</c>).
/// The bias-correction count is never restarted, as in the reference (torch's Adam keeps its "step").</summary>
public enum LoraRestartStates
{
    /// <summary>Every moment entry set to zero (the reference's default, <c>reset_optimizer_on_relora</c>).</summary>
    Zero,
    /// <summary>Each entry zeroed with probability <see cref="LoraOptions.RestartPruneRatio"/>, independently.</summary>
    Random,
    /// <summary>In each moment tensor, the entries whose magnitude is at most the <see cref="LoraOptions.RestartPruneRatio"/>
    /// quantile of the tensor's magnitudes (linear interpolation, as torch.quantile) are zeroed; the larger ones are kept.</summary>
    Magnitude,
}
