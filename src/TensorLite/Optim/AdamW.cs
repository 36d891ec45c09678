using TensorLite.Autograd;
using TensorLite.Memory;

namespace TensorLite.Optim;

/// <summary>
/// Adam with decoupled weight decay (Loshchilov &amp; Hutter): float32 first and second moments per
/// parameter, bias-corrected, updated by one fused backend kernel per parameter.
/// </summary>
public sealed class AdamW : Optimizer
{
    private readonly Tensor?[] _m, _v;

    public AdamW(IEnumerable<Tensor> parameters, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f,
        float eps = 1e-8f, float weightDecay = 0.01f) : base(parameters)
    {
        if (learningRate < 0) throw new ArgumentOutOfRangeException(nameof(learningRate), "The learning rate must be non-negative.");
        if (beta1 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), "beta1 must be in [0, 1).");
        if (beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta2), "beta2 must be in [0, 1).");
        if (eps <= 0) throw new ArgumentOutOfRangeException(nameof(eps), "eps must be positive.");
        LearningRate = learningRate;
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        WeightDecay = weightDecay;
        _m = new Tensor?[Parameters.Count];
        _v = new Tensor?[Parameters.Count];
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }
    public float WeightDecay { get; }

    public override long StateBytes => _m.Concat(_v).Sum(t => t == null ? 0L : (long)t.Numel * 4);

    protected override IEnumerable<(string Name, Tensor Tensor)> OwnStateTensors()
    {
        for (int i = 0; i < Parameters.Count; i++)
        {
            if (_m[i] == null) continue;
            yield return ($"{i}.exp_avg", _m[i]!);
            yield return ($"{i}.exp_avg_sq", _v[i]!);
        }
    }

    protected override void LoadOwnState(IReadOnlyDictionary<string, Tensor> state, long stepCount)
    {
        for (int i = 0; i < Parameters.Count; i++)
        {
            _m[i]?.Dispose();
            _v[i]?.Dispose();
            bool has = state.ContainsKey($"{i}.exp_avg");
            _m[i] = has ? RestoreStateTensor(state, $"{i}.exp_avg", Parameters[i]) : null;
            _v[i] = has ? RestoreStateTensor(state, $"{i}.exp_avg_sq", Parameters[i]) : null;
        }
        StepCount = stepCount;
    }

    private AdamWStepParams _h;

    public override void BeginStep()
    {
        base.BeginStep();
        _h = new AdamWStepParams(LearningRate, Beta1, Beta2, Eps, WeightDecay,
            1f - MathF.Pow(Beta1, StepCount), 1f - MathF.Pow(Beta2, StepCount));
    }

    protected override void Update(int i, Tensor p, Tensor grad)
    {
        if (!p.IsContiguous) throw new TensorLiteException($"AdamW updates parameters in place and needs contiguous ones; {p.Describe()} is a strided view.");
        using var noGrad = GradMode.NoGrad();
        _m[i] ??= Tensor.Zeros(p.Shape, DType.Float32, p.Backend).Persist().Tag(MemoryCategory.OptimizerState);
        _v[i] ??= Tensor.Zeros(p.Shape, DType.Float32, p.Backend).Persist().Tag(MemoryCategory.OptimizerState);
        p.Backend.AdamWStep(p, grad, _m[i]!, _v[i]!, _h with { Rounding = RoundingFor(i) });
    }
}
