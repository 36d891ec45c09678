using TensorLite.Autograd;

namespace TensorLite;

// Joining tensors along an axis and splitting one into views. Any dtype; the joined inputs are copied once
// (strided sources allowed) into windows of the output, and the backward hands each input a view of the gradient.
public sealed partial class Tensor
{
    /// <summary>Elements [start, start+length) along dimension d, as a view without autograd.</summary>
    private Tensor NarrowView(int d, int start, int length)
    {
        var shape = ShapeArray;
        shape[d] = length;
        return ViewOf(shape, (int[])_strides.Clone(), Offset + start * _strides[d]);
    }

    /// <summary>The slice at index i along dimension d with d removed, as a view without autograd.</summary>
    private Tensor SelectView(int d, int i)
    {
        var shape = new List<int>(_shape);
        var strides = new List<int>(_strides);
        shape.RemoveAt(d);
        strides.RemoveAt(d);
        return ViewOf(shape.ToArray(), strides.ToArray(), Offset + i * _strides[d]);
    }

    /// <summary>Checks a non-empty list of live tensors of one dtype and backend; returns the first.</summary>
    private static Tensor CheckJoinInputs(Tensor[] tensors, string op)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (tensors.Length == 0) throw new ArgumentException($"{op}: needs at least one tensor.", nameof(tensors));
        var first = tensors[0] ?? throw new ArgumentNullException(nameof(tensors), $"{op}: tensor 0 is null.");
        first.ThrowIfDisposed();
        for (int i = 1; i < tensors.Length; i++)
        {
            var t = tensors[i] ?? throw new ArgumentNullException(nameof(tensors), $"{op}: tensor {i} is null.");
            t.ThrowIfDisposed();
            if (t.DType != first.DType)
                throw new DTypeMismatchException($"{op}: tensor {i} is {t.Describe()} but tensor 0 is {first.Describe()}.");
            RequireSameBackend(first, t, op);
        }
        return first;
    }

    /// <summary>Joins tensors along an existing dimension; all other dimensions must agree.</summary>
    public static Tensor Concat(int dim, params Tensor[] tensors)
    {
        const string op = "concat";
        var first = CheckJoinInputs(tensors, op);
        if (first.Rank == 0)
            throw new ShapeMismatchException("concat: zero-dimensional tensors cannot be concatenated; use Stack.");
        int d = ShapeMath.NormalizeDim(dim, first.Rank);
        var starts = new int[tensors.Length];
        int total = 0;
        for (int i = 0; i < tensors.Length; i++)
        {
            var t = tensors[i];
            bool matches = t.Rank == first.Rank;
            for (int k = 0; matches && k < t.Rank; k++) matches = k == d || t._shape[k] == first._shape[k];
            if (!matches)
                throw new ShapeMismatchException($"concat: tensor {i} of shape {ShapeMath.Format(t.Shape)} does not match tensor 0 of shape {ShapeMath.Format(first.Shape)} outside dimension {d}.");
            starts[i] = total;
            total += t._shape[d];
        }
        var shape = first.ShapeArray;
        shape[d] = total;
        var y = Empty(shape, first.DType, first.Backend);
        for (int i = 0; i < tensors.Length; i++)
        {
            if (tensors[i].Numel == 0) continue;
            using var window = y.NarrowView(d, starts[i], tensors[i]._shape[d]);
            y.Backend.Copy(tensors[i], window);
        }
        var inputs = (Tensor[])tensors.Clone();
        return Recorder.Record(y, op, inputs, g =>
        {
            var grads = new Tensor?[inputs.Length];
            for (int i = 0; i < inputs.Length; i++)
                if (inputs[i].RequiresGrad) grads[i] = g.Narrow(d, starts[i], inputs[i]._shape[d]);
            return grads;
        });
    }

    /// <summary>Joins equally shaped tensors along a new dimension inserted at <paramref name="dim"/>.</summary>
    public static Tensor Stack(int dim, params Tensor[] tensors)
    {
        const string op = "stack";
        var first = CheckJoinInputs(tensors, op);
        int d = ShapeMath.NormalizeDim(dim, first.Rank + 1);
        for (int i = 1; i < tensors.Length; i++)
            if (!ShapeMath.SameShape(tensors[i].Shape, first.Shape))
                throw new ShapeMismatchException($"stack: tensor {i} of shape {ShapeMath.Format(tensors[i].Shape)} does not match tensor 0 of shape {ShapeMath.Format(first.Shape)}.");
        var shape = new List<int>(first._shape);
        shape.Insert(d, tensors.Length);
        var y = Empty(shape.ToArray(), first.DType, first.Backend);
        if (first.Numel > 0)
        {
            for (int i = 0; i < tensors.Length; i++)
            {
                using var slot = y.SelectView(d, i);
                y.Backend.Copy(tensors[i], slot);
            }
        }
        var inputs = (Tensor[])tensors.Clone();
        return Recorder.Record(y, op, inputs, g =>
        {
            var grads = new Tensor?[inputs.Length];
            for (int i = 0; i < inputs.Length; i++)
                if (inputs[i].RequiresGrad) grads[i] = g.Select(d, i);
            return grads;
        });
    }

    /// <summary>Views of consecutive pieces of the given sizes along <paramref name="dim"/> (they must add up to its size).</summary>
    public Tensor[] Split(int dim, int[] sizes)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(sizes);
        int d = ShapeMath.NormalizeDim(dim, Rank);
        long sum = 0;
        foreach (int s in sizes)
        {
            if (s < 0) throw new ArgumentOutOfRangeException(nameof(sizes), $"split: sizes {ShapeMath.Format(sizes)} contain a negative size.");
            sum += s;
        }
        if (sum != _shape[d])
            throw new ShapeMismatchException($"split: sizes {ShapeMath.Format(sizes)} add up to {sum} but dimension {d} of shape {ShapeMath.Format(Shape)} has size {_shape[d]}.");
        var parts = new Tensor[sizes.Length];
        int start = 0;
        for (int i = 0; i < sizes.Length; i++)
        {
            parts[i] = Narrow(d, start, sizes[i]);
            start += sizes[i];
        }
        return parts;
    }

    /// <summary>
    /// Splits <paramref name="dim"/> into pieces of ceil(size / chunks) elements (the last may be smaller, and
    /// fewer than <paramref name="chunks"/> pieces come back when the size does not fill them), as in torch.chunk.
    /// </summary>
    public Tensor[] Chunk(int dim, int chunks)
    {
        ThrowIfDisposed();
        if (chunks <= 0) throw new ArgumentOutOfRangeException(nameof(chunks), $"chunk: the number of chunks must be positive, got {chunks}.");
        int d = ShapeMath.NormalizeDim(dim, Rank);
        int n = _shape[d];
        if (n == 0) return Split(d, new int[chunks]);
        int size = (n + chunks - 1) / chunks;
        int count = (n + size - 1) / size;
        var sizes = new int[count];
        for (int i = 0; i < count; i++) sizes[i] = Math.Min(size, n - i * size);
        return Split(d, sizes);
    }
}
