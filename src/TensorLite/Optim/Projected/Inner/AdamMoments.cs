using TensorLite.Autograd;
using TensorLite.Memory;

namespace TensorLite.Optim.Projected;

/// <summary>Adam's state for one tensor: float32 first and second moments, updated by the fused backend kernels
/// <see cref="IBackend.AdamWStep"/> (an update applied in place) and <see cref="IBackend.AdamDirection"/> (a direction
/// only). Made by <see cref="AdamWInner.CreateMoments"/>, which holds the hyper-parameters.</summary>
public sealed class AdamMoments : IInnerState
{
    private readonly AdamWInner _owner;
    private readonly Tensor _m, _v;

    internal AdamMoments(AdamWInner owner, int[] shape, IBackend backend, MemoryCategory? category)
    {
        _owner = owner;
        _m = NewMoment(shape, backend, category);
        _v = NewMoment(shape, backend, category);
    }

    private static Tensor NewMoment(int[] shape, IBackend backend, MemoryCategory? category)
    {
        var t = Tensor.Zeros(shape, DType.Float32, backend).Persist();
        return category is MemoryCategory c ? t.Tag(c) : t;
    }

    /// <summary>The first moment m (owned by this object).</summary>
    public Tensor First => _m;

    /// <summary>The second moment v (owned by this object).</summary>
    public Tensor Second => _v;

    /// <inheritdoc/>
    public long StateBytes => 4L * (_m.Numel + _v.Numel);

    /// <inheritdoc/>
    public void Direction(Tensor grad, Tensor direction, long step) =>
        _m.Backend.AdamDirection(grad, _m, _v, direction, _owner.Params(0f, 0f, step));

    /// <inheritdoc/>
    public int RangeGranule => 1;

    /// <inheritdoc/>
    public void Apply(Tensor param, Tensor grad, float learningRate, float weightDecay, long step, ParamRounding rounding, long offset = 0)
    {
        using var m = InnerMath.StateRange(_m, offset, param.Numel);
        using var v = InnerMath.StateRange(_v, offset, param.Numel);
        _m.Backend.AdamWStep(param, grad, m, v, _owner.Params(learningRate, weightDecay, step) with { Rounding = rounding with { FirstIndex = offset } });
    }

    /// <inheritdoc/>
    public void Reset()
    {
        _m.Backend.Fill(_m, 0);
        _v.Backend.Fill(_v, 0);
    }

    /// <inheritdoc/>
    public void ChangeBasis(Tensor change, ProjectionSide side)
    {
        using var noGrad = GradMode.NoGrad();
        using var c2 = change.Square();
        Transform(_m, change, side);
        Transform(_v, c2, side);
    }

    private static void Transform(Tensor state, Tensor c, ProjectionSide side)
    {
        using var next = InnerMath.ChangeBasis(state, c, side);
        state.Backend.Copy(next, state);
    }

    /// <inheritdoc/>
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        yield return ("exp_avg", _m);
        yield return ("exp_avg_sq", _v);
    }

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix)
    {
        Optimizer.CopyStateInto(state, prefix + "exp_avg", _m);
        Optimizer.CopyStateInto(state, prefix + "exp_avg_sq", _v);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _m.Dispose();
        _v.Dispose();
    }
}
