using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>softmax along <paramref name="dim"/>: exp(x − max) / Σ exp(x − max). The result is contiguous.</summary>
    public Tensor Softmax(int dim = -1) => SoftmaxCore(dim, log: false);

    /// <summary>log_softmax along <paramref name="dim"/>: (x − max) − log Σ exp(x − max). The result is contiguous.</summary>
    public Tensor LogSoftmax(int dim = -1) => SoftmaxCore(dim, log: true);

    private Tensor SoftmaxCore(int dim, bool log)
    {
        string name = log ? "log_softmax" : "softmax";
        RequireFloat32(this, name);
        if (Rank == 0)
        {
            ShapeMath.NormalizeDim(dim, 1);
            using var asVector = Reshape(1);
            using var result = asVector.SoftmaxCore(0, log);
            return result.Reshape([]);
        }
        int d = ShapeMath.NormalizeDim(dim, Rank);
        bool last = d == Rank - 1;

        // The kernel works on the last dim: other dims are swapped there (and back) with a copy.
        // `work` is the output in kernel layout, which backward needs.
        Tensor work;
        using (var moved = last ? Alias() : SwapWithLast(d))
        using (var xc = moved.ContiguousNoGrad())
        {
            work = Empty(xc.Shape, DType.Float32, Backend);
            Backend.Softmax(xc, work, log);
        }
        Tensor y;
        if (last)
        {
            y = work.Alias();
        }
        else
        {
            y = Empty(Shape, DType.Float32, Backend);
            using var back = work.SwapWithLast(d);
            Backend.Copy(back, y);
        }

        var backend = Backend;
        var inputShape = _shape;
        // `work` rides along as a node input so the graph keeps its memory until backward has run.
        y = Recorder.Record(y, name, [this, work], g =>
        {
            using var gMoved = last ? g.Alias() : g.SwapWithLast(d);
            using var gc = gMoved.ContiguousNoGrad();
            var gxWork = Empty(work.Shape, DType.Float32, backend);
            backend.SoftmaxBackward(work, gc, gxWork, log);
            if (last) return [gxWork, null];
            var gx = Empty(inputShape, DType.Float32, backend);
            using (var back = gxWork.SwapWithLast(d)) backend.Copy(back, gx);
            gxWork.Dispose();
            return [gx, null];
        });
        work.Dispose();
        return y;
    }

    /// <summary>A view with dimension <paramref name="d"/> and the last dimension swapped (no autograd).</summary>
    private Tensor SwapWithLast(int d)
    {
        var shape = ShapeArray;
        var strides = (int[])_strides.Clone();
        (shape[d], shape[^1]) = (shape[^1], shape[d]);
        (strides[d], strides[^1]) = (strides[^1], strides[d]);
        return ViewOf(shape, strides, Offset);
    }

    /// <summary>Releases a tensor and every temporary listed with it when an op fails half-way.</summary>
    private static void DisposeAll(params Tensor?[] tensors)
    {
        foreach (var t in tensors) t?.Dispose();
    }
}
