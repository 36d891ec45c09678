using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>
    /// Fused RMSNorm over the last dim (as HF LlamaRMSNorm, in float32):
    /// y = x / sqrt(mean(x²) + eps) · weight, with weight shaped [D] for x [..., D].
    /// Backward (for x and weight) reuses the per-row 1/rms saved by the forward pass.
    /// x and weight may be float32, bfloat16 or float16: the math is float32, y has x's dtype and each gradient its
    /// input's dtype; the graph keeps x in its own dtype (plus one float32 1/rms per row).
    /// </summary>
    public Tensor RmsNorm(Tensor weight, float eps = 1e-6f)
    {
        const string op = "rms_norm";
        RequireFloatingPoint(this, op);
        RequireFloatingPoint(weight, op);
        RequireSameBackend(this, weight, op);
        if (Rank == 0)
            throw new ShapeMismatchException($"{op}: input must have at least one dimension to normalize, got shape {ShapeMath.Format(Shape)}.");
        if (weight.Rank != 1 || weight.Shape[0] != _shape[^1])
            throw new ShapeMismatchException($"{op}: weight {ShapeMath.Format(weight.Shape)} must be [{_shape[^1]}] for input {ShapeMath.Format(Shape)}.");
        if (!(eps >= 0) || float.IsInfinity(eps))
            throw new ArgumentException($"{op}: eps must be a finite non-negative number, got {eps}.", nameof(eps));

        var backend = Backend;
        var xc = ContiguousNoGrad();
        var wc = weight.ContiguousNoGrad();
        int rows = _shape[^1] == 0 ? 0 : Numel / _shape[^1];
        var rstd = Empty([rows], DType.Float32, backend);
        var y32 = Empty(Shape, DType.Float32, backend);
        using (var x32 = xc.Float32ContiguousNoGrad())
        using (var w32 = wc.Float32ContiguousNoGrad())
            backend.RmsNorm(x32, w32, eps, y32, rstd);
        var y = NarrowedNoGrad(y32, DType)!;

        var input = this;
        var inputShape = _shape;
        DType inputType = DType, weightType = weight.DType;
        var result = Recorder.Record(y, op, [this, weight, xc, wc, rstd], g =>
        {
            using var gc = g.Float32ContiguousNoGrad();
            using var x32 = xc.Float32ContiguousNoGrad();
            using var w32 = wc.Float32ContiguousNoGrad();
            var gx = input.RequiresGrad ? Empty(inputShape, DType.Float32, backend) : null;
            var gw = weight.RequiresGrad ? Empty(wc.Shape, DType.Float32, backend) : null;
            backend.RmsNormBackward(x32, w32, rstd, gc, gx, gw);
            return [NarrowedNoGrad(gx, inputType), NarrowedNoGrad(gw, weightType), null, null, null];
        });
        DisposeAll(xc, wc, rstd);
        return result;
    }
}
