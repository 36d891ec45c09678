using TensorLite.Autograd;
using TensorLite.Optim.Projected;

namespace TensorLite.Optim;

/// <summary>
/// Adam with decoupled weight decay (Loshchilov &amp; Hutter): float32 first and second moments per parameter,
/// bias-corrected, updated by one fused backend kernel per parameter. The moments are <see cref="AdamWInner"/>'s
/// (<see cref="AdamMoments"/>), the same state the projected optimizer keeps for its dense parameters.
/// </summary>
public sealed class AdamW : Optimizer
{
    private readonly AdamWInner _adam;
    private readonly AdamMoments?[] _moments;

    /// <summary>AdamW over <paramref name="parameters"/> (all must require gradients) with torch.optim.AdamW's
    /// defaults; the learning rate must be non-negative, β1 and β2 in [0, 1), ε positive.</summary>
    public AdamW(IEnumerable<Tensor> parameters, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f,
        float eps = 1e-8f, float weightDecay = 0.01f) : base(parameters)
    {
        if (learningRate < 0) throw new ArgumentOutOfRangeException(nameof(learningRate), "The learning rate must be non-negative.");
        _adam = new AdamWInner(beta1, beta2, eps);
        LearningRate = learningRate;
        WeightDecay = weightDecay;
        _moments = new AdamMoments?[Parameters.Count];
    }

    /// <summary>β1: the first moment's decay, in [0, 1).</summary>
    public float Beta1 => _adam.Beta1;
    /// <summary>β2: the second moment's decay, in [0, 1).</summary>
    public float Beta2 => _adam.Beta2;
    /// <summary>ε: added to √v̂ in the denominator (positive).</summary>
    public float Eps => _adam.Eps;
    /// <summary>Decoupled weight decay: each step multiplies the parameter by 1 − lr·wd before the Adam
    /// update.</summary>
    public float WeightDecay { get; }

    /// <inheritdoc/>
    public override long StateBytes => _moments.Sum(s => s?.StateBytes ?? 0L);

    /// <inheritdoc/>
    protected override IEnumerable<(string Name, Tensor Tensor)> OwnStateTensors()
    {
        for (int i = 0; i < Parameters.Count; i++)
        {
            if (_moments[i] is not AdamMoments s) continue;
            foreach (var (name, t) in s.StateTensors()) yield return ($"{i}.{name}", t);
        }
    }

    /// <inheritdoc/>
    protected override void LoadOwnState(IReadOnlyDictionary<string, Tensor> state, long stepCount)
    {
        for (int i = 0; i < Parameters.Count; i++)
        {
            _moments[i]?.Dispose();
            _moments[i] = null;
            if (!state.ContainsKey($"{i}.exp_avg")) continue;
            _moments[i] = _adam.CreateMoments(Parameters[i].ShapeArray, Parameters[i].Backend);
            _moments[i]!.LoadState(state, $"{i}.");
        }
        StepCount = stepCount;
    }

    /// <inheritdoc/>
    protected override void Update(int i, Tensor p, Tensor grad)
    {
        if (!p.IsContiguous) throw new TensorLiteException($"AdamW updates parameters in place and needs contiguous ones; {p.Describe()} is a strided view.");
        using var noGrad = GradMode.NoGrad();
        _moments[i] ??= _adam.CreateMoments(p.ShapeArray, p.Backend);
        _moments[i]!.Apply(p, grad, StepLearningRate, WeightDecay, StepCount, RoundingFor(i));
    }
}
