using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>Sum of all elements, as a scalar tensor.</summary>
    public Tensor Sum()
    {
        using var flat = Reshape(Numel == 0 ? [0] : [Numel]);
        using var summed = flat.Sum([0], keepDim: false);
        return summed.Reshape([]);
    }

    /// <summary>Sum along one dimension (kept as size 1 with <paramref name="keepDim"/>).</summary>
    public Tensor Sum(int dim, bool keepDim = false) => Sum([dim], keepDim);

    /// <summary>Sum along several dimensions (kept as size 1 with <paramref name="keepDim"/>).</summary>
    public Tensor Sum(int[] dims, bool keepDim = false) => ReduceAxes(ReduceOp.Sum, dims, keepDim, "sum");

    /// <summary>The mean of all elements, as a scalar.</summary>
    public Tensor Mean()
    {
        using var s = Sum();
        return s * (1f / Math.Max(1, Numel));
    }

    /// <summary>Mean along one dimension (kept as size 1 with <paramref name="keepDim"/>).</summary>
    public Tensor Mean(int dim, bool keepDim = false) => Mean([dim], keepDim);

    /// <summary>Mean along several dimensions (kept as size 1 with <paramref name="keepDim"/>).</summary>
    public Tensor Mean(int[] dims, bool keepDim = false)
    {
        long count = 1;
        foreach (var d in dims) count *= _shape[ShapeMath.NormalizeDim(d, Rank)];
        using var s = Sum(dims, keepDim);
        return s * (1f / Math.Max(1, count));
    }

    /// <summary>Maximum along one dimension. The gradient is shared equally among tied maxima.</summary>
    public Tensor Max(int dim, bool keepDim = false) => ReduceAxes(ReduceOp.Max, [dim], keepDim, "max");

    /// <summary>The largest element, as a scalar.</summary>
    public Tensor Max()
    {
        using var flat = Reshape([Numel]);
        using var m = flat.Max(0);
        return m.Reshape([]);
    }

    /// <summary>Sum or max over axes. Half-precision inputs are reduced in float32 (widened once) and the result is
    /// rounded once into the input's dtype, as the other ops on bf16 activations; the gradient has the input's dtype.</summary>
    private Tensor ReduceAxes(ReduceOp op, int[] dims, bool keepDim, string name)
    {
        RequireFloatingPoint(this, name);
        var axes = dims.Select(d => ShapeMath.NormalizeDim(d, Rank)).Distinct().OrderBy(d => d).ToArray();
        if (op == ReduceOp.Max)
            foreach (var ax in axes)
                if (_shape[ax] == 0) throw new ShapeMismatchException($"max: cannot reduce empty dimension {ax} of shape {ShapeMath.Format(Shape)}.");
        // Reduce one axis at a time into keep-dim shaped buffers.
        Tensor current = Float32ContiguousNoGrad();
        foreach (var ax in axes)
        {
            var outShape = current.ShapeArray;
            outShape[ax] = 1;
            var next = Empty(outShape, DType.Float32, Backend);
            Backend.Reduce(op, current, ax, next);
            current.Dispose();
            current = next;
        }
        var keptShape = current.ShapeArray;
        Tensor result = current;
        if (!keepDim)
        {
            var squeezed = Enumerable.Range(0, Rank).Where(i => !axes.Contains(i)).Select(i => _shape[i]).ToArray();
            result = current.ViewOf(squeezed, ShapeMath.ContiguousStrides(squeezed), current.Offset);
            current.Dispose();
        }
        result = NarrowedNoGrad(result, DType)!;
        var input = this;
        var inputShape = _shape;
        return Recorder.Record(result, name, [this], g =>
        {
            using var gKept = g.Reshape(keptShape);
            if (op == ReduceOp.Sum) return [gKept.BroadcastView(inputShape)];
            using var maxKept = result.Reshape(keptShape);
            using var ties = Equal(input, maxKept);
            using var tieCount = ties.Sum(axes, keepDim: true);
            using var share = gKept / tieCount;
            return [NarrowedNoGrad(ties * share, input.DType)];
        });
    }
}
