using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>
    /// Fused softmax cross-entropy: the mean over non-ignored positions of −log softmax(logits)[target].
    /// <paramref name="logits"/> is [N, V] (or [..., V]) float32; <paramref name="targets"/> holds int32 or
    /// int64 class ids shaped like the logits without their last dim. Positions whose target equals
    /// <paramref name="ignoreIndex"/> contribute nothing; when every position is ignored the loss is 0 with
    /// a zero gradient. Only the per-row max and log-sum-exp are kept for backward, never the softmax itself.
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

        var backend = logits.Backend;
        var lc = logits.ContiguousNoGrad();
        var tc = targets.ContiguousNoGrad();
        var rowMax = Empty([targets.Numel], DType.Float32, backend);
        var rowLogSum = Empty([targets.Numel], DType.Float32, backend);
        var loss = Empty([], DType.Float32, backend);
        int count;
        try
        {
            using var l32 = lc.Float32ContiguousNoGrad();
            count = backend.CrossEntropy(l32, tc, ignoreIndex, rowMax, rowLogSum, loss);
        }
        catch
        {
            DisposeAll(lc, tc, rowMax, rowLogSum, loss);
            throw;
        }

        var logitsShape = logits._shape;
        var logitsType = logits.DType;
        // The contiguous logits/targets and the row statistics ride along as node inputs, so the graph
        // holds their memory until backward has run; our own handles go right away.
        var result = Recorder.Record(loss, op, [logits, targets, lc, tc, rowMax, rowLogSum], g =>
        {
            var gx = Empty(logitsShape, DType.Float32, backend);
            using var gc = g.ContiguousNoGrad();
            using var l32 = lc.Float32ContiguousNoGrad();
            backend.CrossEntropyBackward(l32, tc, ignoreIndex, rowMax, rowLogSum, gc, count, gx);
            return [NarrowedNoGrad(gx, logitsType), null, null, null, null, null];
        });
        DisposeAll(lc, tc, rowMax, rowLogSum);
        return result;
    }
}
