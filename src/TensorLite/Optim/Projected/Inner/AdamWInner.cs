using TensorLite.Memory;

namespace TensorLite.Optim.Projected;

/// <summary>Adam's moments (float32 m and v, bias-corrected) as the inner optimizer: it holds Adam's hyper-parameters
/// and makes one <see cref="AdamMoments"/> per tensor. The dense <see cref="Optim.AdamW"/> and the online PCA of OSD
/// use the same moments, so Adam's state and its step parameters exist once.</summary>
public sealed class AdamWInner : IInnerOptimizer
{
    /// <summary>Adam's hyper-parameters: <paramref name="beta1"/> and <paramref name="beta2"/> in [0, 1),
    /// <paramref name="eps"/> positive (torch's defaults).</summary>
    public AdamWInner(float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f)
    {
        if (beta1 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), "beta1 must be in [0, 1).");
        if (beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta2), "beta2 must be in [0, 1).");
        if (!(eps > 0)) throw new ArgumentOutOfRangeException(nameof(eps), "eps must be positive.");
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
    }

    /// <summary>β1: the first moment's decay, in [0, 1).</summary>
    public float Beta1 { get; }
    /// <summary>β2: the second moment's decay, in [0, 1).</summary>
    public float Beta2 { get; }
    /// <summary>ε: added to √v̂ in the denominator (positive).</summary>
    public float Eps { get; }
    /// <inheritdoc/>
    public string Name => "adamw";

    /// <inheritdoc/>
    public IInnerState CreateState(int[] shape, IBackend backend) => CreateMoments(shape, backend);

    /// <summary>Zero moments of <paramref name="shape"/>, counted in the memory ledger as <paramref name="category"/>
    /// (null: left to the category of the scope that creates them, as the online PCA's are until the optimizer tags them
    /// as projector state).</summary>
    public AdamMoments CreateMoments(int[] shape, IBackend backend, MemoryCategory? category = MemoryCategory.OptimizerState) =>
        new(this, shape, backend, category);

    /// <inheritdoc/>
    public long PredictStateBytes(ReadOnlySpan<int> shape) => 2L * 4 * ShapeMath.Numel(shape.ToArray());

    /// <summary>The kernels' parameters for the <paramref name="step"/>-th update (1-based): the bias corrections
    /// 1 − β^t are computed here and nowhere else. A direction (no update applied) takes learning rate and weight decay 0.</summary>
    internal AdamWStepParams Params(float learningRate, float weightDecay, long step) =>
        new(learningRate, Beta1, Beta2, Eps, weightDecay, 1f - MathF.Pow(Beta1, step), 1f - MathF.Pow(Beta2, step));
}
