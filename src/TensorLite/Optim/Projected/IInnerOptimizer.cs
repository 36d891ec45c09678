using TensorLite.Autograd;
using TensorLite.Memory;

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

    long StateBytes { get; }

    /// <summary>The state tensors, named by a suffix ("exp_avg").</summary>
    IEnumerable<(string Name, Tensor Tensor)> StateTensors();

    /// <summary>Copies the saved tensors in (keys are "{prefix}{suffix}").</summary>
    void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix);
}

/// <summary>Adam's moments (float32 m and v, bias-corrected) as the inner optimizer, through the fused backend kernels
/// <see cref="IBackend.AdamWStep"/> (dense) and <see cref="IBackend.AdamDirection"/> (projected).</summary>
public sealed class AdamWInner : IInnerOptimizer
{
    public AdamWInner(float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f)
    {
        if (beta1 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), "beta1 must be in [0, 1).");
        if (beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta2), "beta2 must be in [0, 1).");
        if (!(eps > 0)) throw new ArgumentOutOfRangeException(nameof(eps), "eps must be positive.");
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }
    public string Name => "adamw";

    public IInnerState CreateState(int[] shape, IBackend backend) => new State(this, shape, backend);

    public long PredictStateBytes(ReadOnlySpan<int> shape) => 2L * 4 * ShapeMath.Numel(shape.ToArray());

    internal AdamWStepParams Params(float learningRate, float weightDecay, long step) =>
        new(learningRate, Beta1, Beta2, Eps, weightDecay, 1f - MathF.Pow(Beta1, step), 1f - MathF.Pow(Beta2, step));

    private sealed class State : IInnerState
    {
        private readonly AdamWInner _owner;
        private readonly Tensor _m, _v;

        public State(AdamWInner owner, int[] shape, IBackend backend)
        {
            _owner = owner;
            _m = Tensor.Zeros(shape, DType.Float32, backend).Persist().Tag(MemoryCategory.OptimizerState);
            _v = Tensor.Zeros(shape, DType.Float32, backend).Persist().Tag(MemoryCategory.OptimizerState);
        }

        public long StateBytes => 4L * (_m.Numel + _v.Numel);

        public void Direction(Tensor grad, Tensor direction, long step) =>
            _m.Backend.AdamDirection(grad, _m, _v, direction, _owner.Params(0f, 0f, step));

        public int RangeGranule => 1;

        public void Apply(Tensor param, Tensor grad, float learningRate, float weightDecay, long step, ParamRounding rounding, long offset = 0)
        {
            using var m = InnerMath.StateRange(_m, offset, param.Numel);
            using var v = InnerMath.StateRange(_v, offset, param.Numel);
            _m.Backend.AdamWStep(param, grad, m, v, _owner.Params(learningRate, weightDecay, step) with { Rounding = rounding with { FirstIndex = offset } });
        }

        public void Reset()
        {
            _m.Backend.Fill(_m, 0);
            _v.Backend.Fill(_v, 0);
        }

        public void ChangeBasis(Tensor change, ProjectionSide side)
        {
            using var noGrad = GradMode.NoGrad();
            using var c2 = change.Square();
            Transform(_m, change, side);
            Transform(_v, c2, side);
        }

        private static void Transform(Tensor state, Tensor c, ProjectionSide side)
        {
            using var ct = c.T;
            using var next = side == ProjectionSide.Right ? state.MatMul(ct) : c.MatMul(state);
            state.Backend.Copy(next, state);
        }

        public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
        {
            yield return ("exp_avg", _m);
            yield return ("exp_avg_sq", _v);
        }

        public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix)
        {
            Optimizer.CopyStateInto(state, prefix + "exp_avg", _m);
            Optimizer.CopyStateInto(state, prefix + "exp_avg_sq", _v);
        }

        public void Dispose()
        {
            _m.Dispose();
            _v.Dispose();
        }
    }
}
