using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>
    /// The SwiGLU gate of LLaMA's MLP, fused: silu(this)·<paramref name="up"/> with silu(g) = g·σ(g). On float32 the
    /// same numbers as <c>Silu() * up</c> (bit for bit on the CPU backend), but the graph keeps only this and up for
    /// backward, not silu(this) as well, which saves one MLP-sized activation per decoder layer, and the data is read
    /// once.
    /// Both tensors must have one shape and one floating-point dtype; bfloat16 and float16 are widened as the kernel
    /// reads them, computed in float32 and rounded once (no float32 copies of the activations are made).
    /// </summary>
    public Tensor SwiGlu(Tensor up)
    {
        const string op = "swiglu";
        RequireFloatingPoint(this, op);
        RequireFloatingPoint(up, op);
        RequireSameBackend(this, up, op);
        if (!ShapeMath.SameShape(Shape, up.Shape))
            throw new ShapeMismatchException($"{op}: gate {ShapeMath.Format(Shape)} and up {ShapeMath.Format(up.Shape)} must have the same shape.");
        if (DType != up.DType)
            throw new DTypeMismatchException($"{op}: gate is {DType.Name()} and up is {up.DType.Name()}; both must have the same dtype.");

        var backend = Backend;
        var y = Empty(Shape, DType, backend);
        using (var gc = ContiguousNoGrad())
        using (var uc = up.ContiguousNoGrad())
            backend.SwiGlu(gc, uc, y);

        var gate = this;
        return Recorder.Record(y, op, [this, up], g =>
        {
            // The kernels take one dtype: a seed gradient of another dtype (y.Backward(float32 ones) on bf16 y) is converted.
            using var gc = gate.ContiguousNoGrad();
            using var uc = up.ContiguousNoGrad();
            using var dy = g.DType == gate.DType ? g.ContiguousNoGrad() : g.To(gate.DType);
            var gGate = gate.RequiresGrad ? Empty(gate.Shape, gate.DType, backend) : null;
            var gUp = up.RequiresGrad ? Empty(up.Shape, up.DType, backend) : null;
            backend.SwiGluBackward(gc, uc, dy, gGate, gUp);
            return [gGate, gUp];
        });
    }
}
