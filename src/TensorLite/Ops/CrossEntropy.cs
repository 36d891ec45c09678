using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>
    /// Fused softmax cross-entropy: the mean over non-ignored positions of −log softmax(logits)[target].
    /// <paramref name="logits"/> is [N, V] (or [..., V]) float32; <paramref name="targets"/> holds int32 or
    /// int64 class ids shaped like the logits without their last dim. Positions whose target equals
    /// <paramref name="ignoreIndex"/> contribute nothing; when every position is ignored the loss is 0 with
    /// a zero gradient. When the logits need a gradient it is computed in the same pass as the loss and kept for
    /// backward (one logits-sized float32 buffer); otherwise nothing logits-sized is kept.
    /// bfloat16 or float16 logits are widened for the kernels (the loss is float32 either way); the graph keeps them
    /// in their own dtype and their gradient comes back in it.
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets, int ignoreIndex = -100)
    {
        const string op = "cross_entropy";
        RequireFloatingPoint(logits, op);
        targets.ThrowIfDisposed();
        if (targets.DType is not (DType.Int32 or DType.Int64))
            throw new DTypeMismatchException($"{op}: targets must be int32 or int64 class ids, got {targets.Describe()}.");
        RequireSameBackend(logits, targets, op);
        if (logits.Rank == 0 || !ShapeMath.SameShape(logits.Shape[..^1], targets.Shape))
            throw new ShapeMismatchException($"{op}: logits {ShapeMath.Format(logits.Shape)} need targets of shape {(logits.Rank == 0 ? "[...] with logits [..., V]" : ShapeMath.Format(logits.Shape[..^1]))}, got {ShapeMath.Format(targets.Shape)}.");

        if (logits.RequiresGrad) return CrossEntropyWithGradient(logits, targets, ignoreIndex);

        // Nothing to differentiate (targets never are): the loss alone, no graph node.
        var loss = Empty([], DType.Float32, logits.Backend);
        try
        {
            using var lc = logits.ContiguousNoGrad();
            using var tc = targets.ContiguousNoGrad();
            using var l32 = lc.Float32ContiguousNoGrad();
            using var rowMax = Empty([targets.Numel], DType.Float32, logits.Backend);
            using var rowLogSum = Empty([targets.Numel], DType.Float32, logits.Backend);
            logits.Backend.CrossEntropy(l32, tc, ignoreIndex, rowMax, rowLogSum, loss);
        }
        catch
        {
            loss.Dispose();
            throw;
        }
        return loss;
    }

    /// <summary>
    /// The differentiable cross-entropy: the gradient of the mean loss is computed in the forward pass (each logit is
    /// exponentiated once) and kept for backward, which scales it by the output gradient, in place, when that is not 1.
    /// Memory: the gradient (as large as the float32 logits) exists from the loss to the start of backward instead of
    /// from the start of backward; a training step allocates nothing in between, so its peak is unchanged.
    /// </summary>
    private static Tensor CrossEntropyWithGradient(Tensor logits, Tensor targets, int ignoreIndex)
    {
        var backend = logits.Backend;
        var logitsType = logits.DType;
        var gx = Empty(logits.Shape, DType.Float32, backend);
        var loss = Empty([], DType.Float32, backend);
        try
        {
            using var lc = logits.ContiguousNoGrad();
            using var tc = targets.ContiguousNoGrad();
            using var l32 = lc.Float32ContiguousNoGrad();
            backend.CrossEntropyWithGradient(l32, tc, ignoreIndex, loss, gx);
        }
        catch
        {
            DisposeAll(gx, loss);
            throw;
        }

        // gx rides along as a saved tensor (the graph holds its memory until backward); backward hands an alias of it
        // to the engine, which owns the gradient from then on.
        var result = Recorder.Record(loss, "cross_entropy", [logits, targets], g =>
        {
            var grad = gx.Alias();
            using (var gc = g.ContiguousNoGrad())
                if (gc.Item() != 1f)
                    using (var scale = gc.BroadcastView(grad.Shape))
                        backend.Binary(BinaryOp.Mul, grad, scale, grad);
            return [NarrowedNoGrad(grad, logitsType), null];
        }, saved: [gx]);
        gx.Dispose();
        return result;
    }
}
