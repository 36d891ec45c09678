using TensorLite.Autograd;

namespace TensorLite;

// Views share memory with their input; their backward maps the gradient back onto the input's shape.
public sealed partial class Tensor
{
    private Tensor ViewOf(int[] shape, int[] strides, int offset)
    {
        ThrowIfDisposed();
        Storage.AddRef();
        return new Tensor(Storage, shape, strides, offset, DType);
    }

    /// <summary>Resolves a single -1 entry and checks the element count.</summary>
    private int[] ResolveShape(ReadOnlySpan<int> shape, string op)
    {
        var result = shape.ToArray();
        int inferred = -1;
        long known = 1;
        for (int i = 0; i < result.Length; i++)
        {
            if (result[i] == -1)
            {
                if (inferred >= 0) throw new ShapeMismatchException($"{op}: only one dimension of {ShapeMath.Format(shape)} may be -1.");
                inferred = i;
            }
            else if (result[i] < 0) throw new ShapeMismatchException($"{op}: invalid shape {ShapeMath.Format(shape)}.");
            else known *= result[i];
        }
        if (inferred >= 0)
        {
            if (known == 0 || Numel % known != 0)
                throw new ShapeMismatchException($"{op}: cannot view shape {ShapeMath.Format(Shape)} ({Numel} elements) as {ShapeMath.Format(shape)}.");
            result[inferred] = (int)(Numel / known);
            known *= result[inferred];
        }
        if (known != Numel)
            throw new ShapeMismatchException($"{op}: cannot view shape {ShapeMath.Format(Shape)} ({Numel} elements) as {ShapeMath.Format(shape)}.");
        return result;
    }

    /// <summary>The same elements with a new shape: a view when the layout allows, a copy otherwise. One dim may be -1.</summary>
    public Tensor Reshape(params int[] shape)
    {
        var newShape = ResolveShape(shape, "reshape");
        var strides = ShapeMath.ViewStrides(_shape, _strides, newShape);
        Tensor result;
        if (strides != null)
        {
            result = ViewOf(newShape, strides, Offset);
        }
        else
        {
            using var copy = ContiguousNoGrad();
            result = copy.ViewOf(newShape, ShapeMath.ContiguousStrides(newShape), copy.Offset);
        }
        var inputShape = _shape;
        return Recorder.Record(result, "reshape", [this], g => [g.Reshape(inputShape)]);
    }

    /// <summary>Like <see cref="Reshape"/> but never copies: fails when the layout does not allow a view.</summary>
    public Tensor View(params int[] shape)
    {
        var newShape = ResolveShape(shape, "view");
        if (ShapeMath.ViewStrides(_shape, _strides, newShape) == null)
            throw new ShapeMismatchException($"view: a tensor of shape {ShapeMath.Format(Shape)} with strides {ShapeMath.Format(Strides)} cannot be viewed as {ShapeMath.Format(newShape)} without a copy; use Reshape().");
        return Reshape(newShape);
    }

    /// <summary>Merges dimensions <paramref name="startDim"/> to <paramref name="endDim"/> into one (a view when the layout allows, else a copy).</summary>
    public Tensor Flatten(int startDim = 0, int endDim = -1)
    {
        if (Rank == 0) return Reshape(1);
        int s = ShapeMath.NormalizeDim(startDim, Rank), e = ShapeMath.NormalizeDim(endDim, Rank);
        var shape = new List<int>();
        for (int i = 0; i < s; i++) shape.Add(_shape[i]);
        int merged = 1;
        for (int i = s; i <= e; i++) merged *= _shape[i];
        shape.Add(merged);
        for (int i = e + 1; i < Rank; i++) shape.Add(_shape[i]);
        return Reshape(shape.ToArray());
    }

    /// <summary>Swaps two dimensions (a view, no copy).</summary>
    public Tensor Transpose(int dim0, int dim1)
    {
        int d0 = ShapeMath.NormalizeDim(dim0, Rank), d1 = ShapeMath.NormalizeDim(dim1, Rank);
        var perm = Enumerable.Range(0, Rank).ToArray();
        (perm[d0], perm[d1]) = (perm[d1], perm[d0]);
        return Permute(perm);
    }

    /// <summary>The transpose of the last two dimensions (no copy).</summary>
    public Tensor T => Transpose(-2, -1);

    /// <summary>Reorders the dimensions: dimension i of the result is <paramref name="dims"/>[i] of this tensor (a view, no copy).</summary>
    public Tensor Permute(params int[] dims)
    {
        if (dims.Length != Rank)
            throw new ShapeMismatchException($"permute: {dims.Length} dims given for a tensor of shape {ShapeMath.Format(Shape)}.");
        var shape = new int[Rank];
        var strides = new int[Rank];
        var inverse = new int[Rank];
        var seen = new bool[Rank];
        for (int i = 0; i < Rank; i++)
        {
            int d = ShapeMath.NormalizeDim(dims[i], Rank);
            if (seen[d]) throw new ShapeMismatchException($"permute: dimension {d} appears twice in {ShapeMath.Format(dims)}.");
            seen[d] = true;
            shape[i] = _shape[d];
            strides[i] = _strides[d];
            inverse[d] = i;
        }
        var result = ViewOf(shape, strides, Offset);
        return Recorder.Record(result, "permute", [this], g => [g.Permute(inverse)]);
    }

    /// <summary>Elements [start, start+length) along one dimension (no copy).</summary>
    public Tensor Narrow(int dim, int start, int length)
    {
        int d = ShapeMath.NormalizeDim(dim, Rank);
        if (start < 0 || length < 0 || start + length > _shape[d])
            throw new ArgumentOutOfRangeException(nameof(start), $"narrow: range [{start}, {start + length}) is outside dimension {d} of size {_shape[d]} in shape {ShapeMath.Format(Shape)}.");
        var shape = ShapeArray;
        shape[d] = length;
        var result = ViewOf(shape, (int[])_strides.Clone(), Offset + start * _strides[d]);
        var inputShape = _shape;
        return Recorder.Record(result, "narrow", [this], g =>
        {
            var full = Zeros(inputShape, g.DType, g.Backend);
            using var window = full.Narrow(d, start, length);
            g.Backend.Copy(g, window);
            return [full];
        });
    }

    /// <summary>The slice at <paramref name="index"/> along a dimension, which is removed (no copy).</summary>
    public Tensor Select(int dim, int index)
    {
        int d = ShapeMath.NormalizeDim(dim, Rank);
        if (index < -_shape[d] || index >= _shape[d])
            throw new ArgumentOutOfRangeException(nameof(index), $"select: index {index} is out of range for dimension {d} of size {_shape[d]}.");
        if (index < 0) index += _shape[d];
        using var narrowed = Narrow(d, index, 1);
        return narrowed.Squeeze(d);
    }

    /// <summary>Inserts a dimension of size 1 at <paramref name="dim"/>.</summary>
    public Tensor Unsqueeze(int dim)
    {
        int d = ShapeMath.NormalizeDim(dim, Rank + 1);
        var shape = new List<int>(_shape);
        shape.Insert(d, 1);
        return Reshape(shape.ToArray());
    }

    /// <summary>Removes dimension <paramref name="dim"/>, which must have size 1.</summary>
    public Tensor Squeeze(int dim)
    {
        int d = ShapeMath.NormalizeDim(dim, Rank);
        if (_shape[d] != 1)
            throw new ShapeMismatchException($"squeeze: dimension {d} of shape {ShapeMath.Format(Shape)} is not of size 1.");
        var shape = new List<int>(_shape);
        shape.RemoveAt(d);
        return Reshape(shape.ToArray());
    }

    /// <summary>A broadcast view to a larger shape (size-1 dims repeat with stride 0; -1 keeps a dim).</summary>
    public Tensor Expand(params int[] shape)
    {
        var target = shape.ToArray();
        if (target.Length < Rank)
            throw new ShapeMismatchException($"expand: cannot expand shape {ShapeMath.Format(Shape)} to fewer dimensions {ShapeMath.Format(shape)}.");
        int lead = target.Length - Rank;
        for (int i = lead; i < target.Length; i++)
            if (target[i] == -1) target[i] = _shape[i - lead];
        var result = BroadcastView(target, "expand");
        var inputShape = _shape;
        return Recorder.Record(result, "expand", [this], g => [SumToShape(g, inputShape)]);
    }

    /// <summary>A zero-stride view of this tensor as <paramref name="shape"/>, without autograd.</summary>
    internal Tensor BroadcastView(ReadOnlySpan<int> shape, string op = "broadcast")
    {
        int lead = shape.Length - Rank;
        if (lead < 0) throw new ShapeMismatchException($"{op}: cannot broadcast shape {ShapeMath.Format(Shape)} to {ShapeMath.Format(shape)}.");
        var strides = new int[shape.Length];
        for (int i = 0; i < shape.Length; i++)
        {
            if (i < lead) { strides[i] = 0; continue; }
            int own = _shape[i - lead];
            if (own == shape[i]) strides[i] = _strides[i - lead];
            else if (own == 1) strides[i] = 0;
            else throw new ShapeMismatchException($"{op}: cannot broadcast shape {ShapeMath.Format(Shape)} to {ShapeMath.Format(shape)}.");
        }
        return ViewOf(shape.ToArray(), strides, Offset);
    }

    /// <summary>This tensor with a contiguous layout (a view of the same memory when it already is).</summary>
    public Tensor Contiguous()
    {
        var result = ContiguousNoGrad();
        return Recorder.Record(result, "contiguous", [this], g => [g]);
    }

    /// <summary>A contiguous copy of the data.</summary>
    public Tensor Clone()
    {
        var result = Empty(Shape, DType, Backend);
        Backend.Copy(this, result);
        return Recorder.Record(result, "clone", [this], g => [g]);
    }

    /// <summary>Converts to another dtype (a view when it already is that dtype).</summary>
    public Tensor To(DType dtype)
    {
        if (dtype == DType) return Contiguous();
        var result = Empty(Shape, dtype, Backend);
        Backend.Copy(this, result);
        var inputType = DType;
        return Recorder.Record(result, "to", [this], g => [g.To(inputType)]);
    }

    internal Tensor ContiguousNoGrad()
    {
        if (IsContiguous) return Alias();
        var result = Empty(Shape, DType, Backend);
        Backend.Copy(this, result);
        return result;
    }

    /// <summary>Sums a (broadcast) gradient back down to <paramref name="shape"/>.</summary>
    internal static Tensor SumToShape(Tensor g, ReadOnlySpan<int> shape)
    {
        if (ShapeMath.SameShape(g.Shape, shape)) return g;
        int lead = g.Rank - shape.Length;
        var dims = new List<int>();
        for (int i = 0; i < g.Rank; i++)
            if (i < lead || (shape[i - lead] == 1 && g.Shape[i] != 1)) dims.Add(i);
        using var summed = g.Sum(dims.ToArray(), keepDim: true);
        return summed.Reshape(shape.ToArray());
    }
}
