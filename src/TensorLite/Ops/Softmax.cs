using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>softmax along <paramref name="dim"/>: exp(x − max) / Σ exp(x − max). The result is contiguous.</summary>
    public Tensor Softmax(int dim = -1) => SoftmaxCore(dim, log: false);

    /// <summary>log_softmax along <paramref name="dim"/>: (x − max) − log Σ exp(x − max). The result is contiguous.</summary>
    public Tensor LogSoftmax(int dim = -1) => SoftmaxCore(dim, log: true);

    // Numerically stable (the max is subtracted first). The kernel reduces along any axis of the
    // contiguous input in place, without transposing it. A bfloat16 or float16 input is widened for the kernel; the
    // output (and the input's gradient) is rounded back into its dtype, and the graph keeps the output in that dtype.
    private Tensor SoftmaxCore(int dim, bool log)
    {
        string name = log ? "log_softmax" : "softmax";
        RequireFloatingPoint(this, name);
        if (Rank == 0)
        {
            ShapeMath.NormalizeDim(dim, 1);
            using var asVector = Reshape(1);
            using var vector = asVector.SoftmaxCore(0, log);
            return vector.Reshape([]);
        }
        int axis = ShapeMath.NormalizeDim(dim, Rank);
        var backend = Backend;
        var y32 = Empty(Shape, DType.Float32, backend);
        using (var xc = Float32ContiguousNoGrad()) backend.Softmax(xc, y32, axis, log);
        var y = NarrowedNoGrad(y32, DType)!;

        // Backward needs the output: a handle of it rides along as a node input, so the graph keeps its
        // memory even when the caller disposes y before Backward.
        var saved = y.Alias();
        var inputShape = _shape;
        var inputType = DType;
        var result = Recorder.Record(y, name, [this, saved], g =>
        {
            using var gc = g.Float32ContiguousNoGrad();
            using var yc = saved.Float32ContiguousNoGrad();
            var gx = Empty(inputShape, DType.Float32, backend);
            backend.SoftmaxBackward(yc, gc, gx, axis, log);
            return [NarrowedNoGrad(gx, inputType), null];
        });
        saved.Dispose();
        return result;
    }

    /// <summary>Disposes the listed handles (temporaries of the NN ops), skipping nulls.</summary>
    private static void DisposeAll(params Tensor?[] tensors)
    {
        foreach (var t in tensors) t?.Dispose();
    }
}
