using TensorLite.Autograd;

namespace TensorLite;

// Integer-indexed reads and accumulations: embedding lookup, index_select/index_add (whole slices along an
// axis, e.g. the rows a sparse projector keeps) and gather/scatter_add (one element per index entry).
// Each read's backward is the matching accumulation and vice versa. Index values are checked before any
// output is allocated; index tensors are kept as node inputs so their memory outlives a user's Dispose().
public sealed partial class Tensor
{
    internal static void RequireIndex(Tensor index, string op, string name)
    {
        index.ThrowIfDisposed();
        if (index.DType is not (DType.Int32 or DType.Int64))
            throw new DTypeMismatchException($"{op}: {name} must be int32 or int64, got {index.Describe()}.");
    }

    /// <summary>The operand checks of the accumulations (index_add, scatter_add): float32 this and src, an integer
    /// index, all three on this tensor's backend.</summary>
    private void RequireAccumulation(Tensor index, Tensor src, string op)
    {
        RequireFloat32(this, op);
        RequireFloat32(src, op);
        RequireIndex(index, op, "index");
        RequireSameBackend(this, index, op);
        RequireSameBackend(this, src, op);
    }

    /// <summary>Throws when a contiguous index tensor holds a value outside [0, size).</summary>
    private static void CheckIndexValues(Tensor index, int size, string op, string label, string range, string paramName = "index")
    {
        long position = index.Backend.FindIndexOutOfRange(index, size, out long value);
        if (position < 0) return;
        string where = index.Rank <= 1 ? $"position {position}" : $"position {ShapeMath.Format(Unravel(position, index.Shape))}";
        throw new ArgumentOutOfRangeException(paramName, $"{op}: {label} {value} at {where} is out of range for {range}.");
    }

    private static int[] Unravel(long flat, ReadOnlySpan<int> shape)
    {
        var coords = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            coords[d] = (int)(flat % shape[d]);
            flat /= shape[d];
        }
        return coords;
    }

    private static string DimRange(int dim, ReadOnlySpan<int> shape) =>
        $"dimension {dim} of size {shape[dim]} in shape {ShapeMath.Format(shape)}";

    /// <summary>A view of the leading box of this tensor (same strides and offset), without autograd.</summary>
    private Tensor LeadingView(int[] shape) => ViewOf(shape, (int[])_strides.Clone(), Offset);

    private static Tensor Float32Contiguous(Tensor t) => t.DType == DType.Float32 ? t.ContiguousNoGrad() : t.To(DType.Float32);

    /// <summary>Converts a float32 gradient to its input's dtype (disposing the float32 one when it converted).</summary>
    private static Tensor InDType(Tensor grad, DType dtype)
    {
        if (dtype == DType.Float32) return grad;
        var converted = grad.To(dtype);
        grad.Dispose();
        return converted;
    }

    // ---- embedding / index_select / index_add ---------------------------------------------------

    /// <summary>
    /// Rows of <paramref name="weight"/> [V, D] picked by integer <paramref name="ids"/> of any shape: the result
    /// is [..ids.Shape, D]. The weight's gradient scatter-adds the output gradient's rows (repeated ids accumulate).
    /// </summary>
    public static Tensor Embedding(Tensor weight, Tensor ids)
    {
        const string op = "embedding";
        weight.ThrowIfDisposed();
        RequireIndex(ids, op, "ids");
        RequireSameBackend(weight, ids, op);
        if (weight.Rank != 2)
            throw new ShapeMismatchException($"embedding: weight must be a [vocab, dim] matrix, got shape {ShapeMath.Format(weight.Shape)}.");
        int vocab = weight._shape[0], dim = weight._shape[1];
        using var idc = ids.ContiguousNoGrad();
        CheckIndexValues(idc, vocab, op, "id", $"a vocabulary of {vocab} rows (weight shape {ShapeMath.Format(weight.Shape)})", "ids");
        var y = Empty([.. ids._shape, dim], weight.DType, weight.Backend);
        using (var wc = weight.ContiguousNoGrad()) weight.Backend.IndexSelect(wc, 0, idc, y);
        var weightShape = weight._shape;
        var weightType = weight.DType;
        return Recorder.Record(y, op, [weight, ids], g => [IndexAddGrad(g, weightShape, weightType, 0, ids), null]);
    }

    /// <summary>The slices at 1-D <paramref name="index"/> along <paramref name="dim"/> (any dtype; rows of a
    /// contiguous matrix are copied with one memcpy each). Repeated indices repeat slices; the gradient adds them back.</summary>
    public Tensor IndexSelect(int dim, Tensor index)
    {
        const string op = "index_select";
        ThrowIfDisposed();
        RequireIndex(index, op, "index");
        RequireSameBackend(this, index, op);
        int d = ShapeMath.NormalizeDim(dim, Rank);
        if (index.Rank > 1)
            throw new ShapeMismatchException($"index_select: index must be 1-D, got shape {ShapeMath.Format(index.Shape)}.");
        using var ic = index.ContiguousNoGrad();
        CheckIndexValues(ic, _shape[d], op, "index", DimRange(d, Shape));
        var outShape = ShapeArray;
        outShape[d] = index.Numel;
        var y = Empty(outShape, DType, Backend);
        using (var xc = ContiguousNoGrad()) Backend.IndexSelect(xc, d, ic, y);
        var inputShape = _shape;
        var inputType = DType;
        return Recorder.Record(y, op, [this, index], g => [IndexAddGrad(g, inputShape, inputType, d, index), null]);
    }

    /// <summary>A copy of this tensor with the slices of <paramref name="src"/> added at 1-D <paramref name="index"/>
    /// along <paramref name="dim"/> (src has this shape with that dim replaced by the index length; repeats accumulate).</summary>
    public Tensor IndexAdd(int dim, Tensor index, Tensor src)
    {
        const string op = "index_add";
        RequireAccumulation(index, src, op);
        int d = ShapeMath.NormalizeDim(dim, Rank);
        if (index.Rank > 1)
            throw new ShapeMismatchException($"index_add: index must be 1-D, got shape {ShapeMath.Format(index.Shape)}.");
        var srcShape = ShapeArray;
        srcShape[d] = index.Numel;
        if (!ShapeMath.SameShape(src.Shape, srcShape))
            throw new ShapeMismatchException($"index_add: src has shape {ShapeMath.Format(src.Shape)} but an input of shape {ShapeMath.Format(Shape)} with {index.Numel} indices along dimension {d} needs {ShapeMath.Format(srcShape)}.");
        using var ic = index.ContiguousNoGrad();
        CheckIndexValues(ic, _shape[d], op, "index", DimRange(d, Shape));
        var y = Empty(Shape, DType.Float32, Backend);
        Backend.Copy(this, y);
        using (var sc = src.ContiguousNoGrad()) Backend.IndexAdd(y, d, ic, sc);
        var input = this;
        return Recorder.Record(y, op, [this, index, src], g =>
            [input.RequiresGrad ? g : null, null, src.RequiresGrad ? IndexSelectGrad(g, d, index, srcShape) : null]);
    }

    /// <summary>Zeros of the input's shape with g's slices added at the index along an axis, in the input's dtype.</summary>
    private static Tensor IndexAddGrad(Tensor g, int[] inputShape, DType inputType, int axis, Tensor index)
    {
        var gx = Zeros(inputShape, DType.Float32, g.Backend);
        using (var gc = Float32Contiguous(g))
        using (var ic = index.ContiguousNoGrad())
            g.Backend.IndexAdd(gx, axis, ic, gc);
        return InDType(gx, inputType);
    }

    private static Tensor IndexSelectGrad(Tensor g, int axis, Tensor index, int[] shape)
    {
        var result = Empty(shape, DType.Float32, g.Backend);
        using (var gc = Float32Contiguous(g))
        using (var ic = index.ContiguousNoGrad())
            g.Backend.IndexSelect(gc, axis, ic, result);
        return result;
    }

    // ---- gather / scatter_add -------------------------------------------------------------------

    /// <summary>
    /// torch.gather: out[p] = this[p with coordinate <paramref name="dim"/> replaced by index[p]]. The index has this
    /// tensor's rank and is no larger off <paramref name="dim"/>; the result has the index's shape.
    /// </summary>
    public Tensor Gather(int dim, Tensor index)
    {
        const string op = "gather";
        RequireFloat32(this, op);
        RequireIndex(index, op, "index");
        RequireSameBackend(this, index, op);
        if (index.Rank != Rank)
            throw new ShapeMismatchException($"gather: index of shape {ShapeMath.Format(index.Shape)} must have the rank of the input of shape {ShapeMath.Format(Shape)}.");
        int d = ShapeMath.NormalizeDim(dim, Rank);
        for (int i = 0; i < Rank; i++)
            if (i != d && index._shape[i] > _shape[i])
                throw new ShapeMismatchException($"gather: index of shape {ShapeMath.Format(index.Shape)} is larger than the input of shape {ShapeMath.Format(Shape)} in dimension {i}.");
        using var ic = index.ContiguousNoGrad();
        CheckIndexValues(ic, _shape[d], op, "index", DimRange(d, Shape));
        var y = Empty(index.Shape, DType.Float32, Backend);
        using (var xc = ContiguousNoGrad()) Backend.Gather(xc, d, ic, y);
        var inputShape = _shape;
        return Recorder.Record(y, op, [this, index], g =>
        {
            var gx = Zeros(inputShape, DType.Float32, g.Backend);
            using (var gc = g.ContiguousNoGrad())
            using (var idx = index.ContiguousNoGrad())
                g.Backend.ScatterAdd(gx, d, idx, gc);
            return [gx, null];
        });
    }

    /// <summary>
    /// torch.scatter_add, out of place: a copy of this tensor with src[p] added at p's position with coordinate
    /// <paramref name="dim"/> replaced by index[p] (repeats accumulate). index, src and this tensor share a rank;
    /// the index is no larger than src anywhere and no larger than this tensor off <paramref name="dim"/>.
    /// </summary>
    public Tensor ScatterAdd(int dim, Tensor index, Tensor src)
    {
        const string op = "scatter_add";
        RequireAccumulation(index, src, op);
        if (index.Rank != Rank || src.Rank != Rank)
            throw new ShapeMismatchException($"scatter_add: input {ShapeMath.Format(Shape)}, index {ShapeMath.Format(index.Shape)} and src {ShapeMath.Format(src.Shape)} must have the same rank.");
        int d = ShapeMath.NormalizeDim(dim, Rank);
        for (int i = 0; i < Rank; i++)
        {
            if (index._shape[i] > src._shape[i])
                throw new ShapeMismatchException($"scatter_add: index of shape {ShapeMath.Format(index.Shape)} is larger than src of shape {ShapeMath.Format(src.Shape)} in dimension {i}.");
            if (i != d && index._shape[i] > _shape[i])
                throw new ShapeMismatchException($"scatter_add: index of shape {ShapeMath.Format(index.Shape)} is larger than the input of shape {ShapeMath.Format(Shape)} in dimension {i}.");
        }
        using var ic = index.ContiguousNoGrad();
        CheckIndexValues(ic, _shape[d], op, "index", DimRange(d, Shape));
        var y = Empty(Shape, DType.Float32, Backend);
        Backend.Copy(this, y);
        var indexShape = index._shape;
        using (var sv = src.LeadingView(indexShape))
        using (var sc = sv.ContiguousNoGrad())
            Backend.ScatterAdd(y, d, ic, sc);
        var input = this;
        var srcShape = src._shape;
        return Recorder.Record(y, op, [this, index, src], g =>
        {
            Tensor? gsrc = null;
            if (src.RequiresGrad)
            {
                gsrc = Empty(indexShape, DType.Float32, g.Backend);
                using (var gc = g.ContiguousNoGrad())
                using (var idx = index.ContiguousNoGrad())
                    g.Backend.Gather(gc, d, idx, gsrc);
                if (!ShapeMath.SameShape(indexShape, srcShape))
                {
                    var full = Zeros(srcShape, DType.Float32, g.Backend);
                    using (var window = full.LeadingView(indexShape)) g.Backend.Copy(gsrc, window);
                    gsrc.Dispose();
                    gsrc = full;
                }
            }
            return [input.RequiresGrad ? g : null, null, gsrc];
        });
    }
}
