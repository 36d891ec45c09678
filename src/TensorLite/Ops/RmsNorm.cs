using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>
    /// Fused RMSNorm over the last dim (as HF LlamaRMSNorm, in float32):
    /// y = x / sqrt(mean(x²) + eps) · weight, with weight shaped [D] for x [..., D].
    /// Backward (for x and weight) reuses the per-row 1/rms saved by the forward pass.
    /// </summary>
    public Tensor RmsNorm(Tensor weight, float eps = 1e-6f)
    {
        const string op = "rms_norm";
        RequireFloat32(this, op);
        RequireFloat32(weight, op);
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
        var y = Empty(Shape, DType.Float32, backend);
        backend.RmsNorm(xc, wc, eps, y, rstd);

        var input = this;
        var inputShape = _shape;
        var result = Recorder.Record(y, op, [this, weight, xc, wc, rstd], g =>
        {
            using var gc = g.ContiguousNoGrad();
            var gx = input.RequiresGrad ? Empty(inputShape, DType.Float32, backend) : null;
            var gw = weight.RequiresGrad ? Empty(wc.Shape, DType.Float32, backend) : null;
            backend.RmsNormBackward(xc, wc, rstd, gc, gx, gw);
            return [gx, gw, null, null, null];
        });
        DisposeAll(xc, wc, rstd);
        return result;
    }
}
