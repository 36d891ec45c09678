using TensorLite.Autograd;
using TensorLite.Memory;

namespace TensorLite.Optim.Projected;

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
