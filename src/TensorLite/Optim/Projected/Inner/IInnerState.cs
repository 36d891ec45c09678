namespace TensorLite.Optim.Projected;

/// <summary>The inner optimizer's state for one tensor shape.</summary>
public interface IInnerState : IDisposable
{
    /// <summary>Updates the moments from <paramref name="grad"/> and writes the direction into
    /// <paramref name="direction"/> (same shape), without applying it. <paramref name="step"/> is the 1-based count of
    /// updates since the state was created or reset (bias corrections use it).</summary>
    void Direction(Tensor grad, Tensor direction, long step);

    /// <summary>
    /// The fused dense update of a parameter: param ← (1 − lr·wd)·param − lr·direction(grad), written back with
    /// <paramref name="rounding"/> when the parameter is bfloat16. With <paramref name="offset"/> > 0 or fewer elements
    /// than the state covers, param and grad are elements [offset, offset + param.Numel) of the flattened parameter and
    /// gradient, and only that range of the moments is read and written; offset is then a multiple of
    /// <see cref="RangeGranule"/>, and the state rounds with FirstIndex = offset, so the range draws the whole update's
    /// stochastic-rounding bits.
    /// </summary>
    void Apply(Tensor param, Tensor grad, float learningRate, float weightDecay, long step, ParamRounding rounding, long offset = 0);

    /// <summary>The element ranges <see cref="Apply"/> takes start at multiples of this; 0 when the state can only update
    /// the whole parameter (its moments are not element-wise, as Adafactor's row and column factors are not).</summary>
    int RangeGranule { get; }

    /// <summary>Zeroes the moments (the caller restarts the step count).</summary>
    void Reset();

    /// <summary>
    /// Carries the moments into a new projection basis. <paramref name="change"/> is C = B_newᵀ·B_old [r, r]; for a
    /// left projection (R = Bᵀ·G) the state's rows are basis coordinates and first moments become C·M, for a right one
    /// (R = G·B) its columns are and they become M·Cᵀ. Element-wise second moments use C∘C in place of C (the variance of
    /// a sum of independent coordinates), which keeps them non-negative.
    /// </summary>
    void ChangeBasis(Tensor change, ProjectionSide side);

    /// <summary>The bytes the state's tensors hold (moments, quantization scales).</summary>
    long StateBytes { get; }

    /// <summary>The state tensors, named by a suffix ("exp_avg").</summary>
    IEnumerable<(string Name, Tensor Tensor)> StateTensors();

    /// <summary>Copies the saved tensors in (keys are "{prefix}{suffix}").</summary>
    void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix);
}
