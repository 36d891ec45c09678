using TensorLite.Autograd;

namespace TensorLite;

// Element selection by a condition (where, masked_fill) and inverted dropout. Conditions and masks may be of
// any dtype: nonzero means true. None of them is differentiated with respect to the condition.
public sealed partial class Tensor
{
    /// <summary>condition ≠ 0 ? a : b, element-wise with NumPy broadcasting of all three. The gradient of each
    /// branch is the output gradient where that branch was taken and zero elsewhere (summed to its shape).</summary>
    public static Tensor Where(Tensor condition, Tensor a, Tensor b)
    {
        const string op = "where";
        ArgumentNullException.ThrowIfNull(condition);
        condition.ThrowIfDisposed();
        RequireFloat32(a, op);
        RequireFloat32(b, op);
        RequireSameBackend(condition, a, op);
        RequireSameBackend(a, b, op);
        int[] shape;
        try
        {
            shape = ShapeMath.Broadcast(ShapeMath.Broadcast(condition.Shape, a.Shape), b.Shape);
        }
        catch (ShapeMismatchException)
        {
            throw new ShapeMismatchException($"where: condition {ShapeMath.Format(condition.Shape)}, a {ShapeMath.Format(a.Shape)} and b {ShapeMath.Format(b.Shape)} cannot be broadcast together.");
        }
        var y = Empty(shape, DType.Float32, a.Backend);
        using (var cv = condition.BroadcastView(shape))
        using (var av = a.BroadcastView(shape))
        using (var bv = b.BroadcastView(shape))
            a.Backend.Where(cv, av, bv, y);
        var aShape = a._shape;
        var bShape = b._shape;
        return Recorder.Record(y, op, [condition, a, b], g =>
            [null,
             a.RequiresGrad ? Reduced(BranchGrad(condition, g, whereTrue: true), aShape) : null,
             b.RequiresGrad ? Reduced(BranchGrad(condition, g, whereTrue: false), bShape) : null]);
    }

    /// <summary>This tensor with <paramref name="value"/> where the (broadcast) mask is nonzero. The gradient is
    /// zero at the filled positions.</summary>
    public Tensor MaskedFill(Tensor mask, float value)
    {
        const string op = "masked_fill";
        RequireFloat32(this, op);
        ArgumentNullException.ThrowIfNull(mask);
        mask.ThrowIfDisposed();
        RequireSameBackend(this, mask, op);
        if (!BroadcastsTo(mask.Shape, Shape))
            throw new ShapeMismatchException($"masked_fill: mask of shape {ShapeMath.Format(mask.Shape)} cannot be broadcast to the input shape {ShapeMath.Format(Shape)}.");
        var y = Empty(Shape, DType.Float32, Backend);
        using (var fill = Full([], value, DType.Float32, Backend))
        using (var fv = fill.BroadcastView(Shape))
        using (var mv = mask.BroadcastView(Shape))
            Backend.Where(mv, fv, this, y);
        return Recorder.Record(y, op, [this, mask], g => [BranchGrad(mask, g, whereTrue: false), null]);
    }

    private static bool BroadcastsTo(ReadOnlySpan<int> shape, ReadOnlySpan<int> target)
    {
        if (shape.Length > target.Length) return false;
        int lead = target.Length - shape.Length;
        for (int i = 0; i < shape.Length; i++)
            if (shape[i] != 1 && shape[i] != target[lead + i]) return false;
        return true;
    }

    /// <summary>g where the condition picks this branch (true or false), zero elsewhere; g's shape.</summary>
    private static Tensor BranchGrad(Tensor condition, Tensor g, bool whereTrue)
    {
        var result = Empty(g.Shape, DType.Float32, g.Backend);
        using var zero = Zeros([], DType.Float32, g.Backend);
        using var zv = zero.BroadcastView(g.Shape);
        using var cv = condition.BroadcastView(g.Shape);
        if (whereTrue) g.Backend.Where(cv, g, zv, result);
        else g.Backend.Where(cv, zv, g, result);
        return result;
    }

    /// <summary>
    /// Inverted dropout: zeroes each element with probability <paramref name="p"/> and scales the rest by 1/(1−p),
    /// so the expected value is unchanged. The mask is derived from one draw of <paramref name="generator"/> (same
    /// generator state, same mask) and regenerated in the backward pass instead of being stored. With p = 0 or
    /// <paramref name="training"/> false this is the identity (and the generator does not advance).
    /// </summary>
    public Tensor Dropout(float p, Generator generator, bool training = true)
    {
        const string op = "dropout";
        ArgumentNullException.ThrowIfNull(generator);
        if (!(p >= 0f && p < 1f))
            throw new ArgumentException($"dropout: probability {p} must be in [0, 1).", nameof(p));
        RequireFloat32(this, op);
        if (!training || p == 0f) return Recorder.Record(Alias(), op, [this], g => [g]);
        ulong seed = generator.NextUInt64();
        var y = Empty(Shape, DType.Float32, Backend);
        using (var xc = ContiguousNoGrad()) Backend.Dropout(xc, y, p, seed);
        return Recorder.Record(y, op, [this], g =>
        {
            var gx = Empty(g.Shape, DType.Float32, g.Backend);
            using (var gc = g.ContiguousNoGrad()) g.Backend.Dropout(gc, gx, p, seed);
            return [gx];
        });
    }
}
