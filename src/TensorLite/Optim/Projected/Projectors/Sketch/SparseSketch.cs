using TensorLite.Autograd;
using TensorLite.Memory;

namespace TensorLite.Optim.Projected;

/// <summary>
/// A sparse sketch S [r, dim] as LSP_Offload uses it (Chen et al. 2024, arXiv:2406.10181): every column j has exactly
/// d non-zeros, at d distinct rows <see cref="Indices"/>[k, j] (k &lt; d) and with learned values
/// <see cref="Values"/>[k, j]. The pattern is drawn once and stays fixed; only the values change. S is never formed:
/// every product is d index-adds or index-selects over the other operand (O(d·dim·columns)), on the backend the
/// sketch lives on (<see cref="Dense"/> forms it for bases and tests).
/// </summary>
public sealed class SparseSketch : IDisposable
{
    private SparseSketch(int rows, Tensor indices, Tensor values)
    {
        Rows = rows;
        Indices = indices;
        Values = values;
    }

    /// <summary>r: the sketch's rows (the compressed size).</summary>
    public int Rows { get; }

    /// <summary>dim: the sketch's columns (the length of the side it compresses).</summary>
    public int Columns => Indices.Shape[1];

    /// <summary>d: the non-zeros per column.</summary>
    public int NonZeros => Indices.Shape[0];

    /// <summary>The rows of the non-zeros, int32 [d, dim]; column j's d entries are distinct.</summary>
    public Tensor Indices { get; }

    /// <summary>The values of the non-zeros, float32 [d, dim] (updated in place by a fit).</summary>
    public Tensor Values { get; }

    /// <summary>A random sketch: for every column d distinct rows out of <paramref name="rows"/> (a partial
    /// Fisher–Yates shuffle, so each d-subset is equally likely) and values ±1/√d with random signs, so every column has
    /// unit norm. The draws come from <paramref name="generator"/> alone.</summary>
    public static SparseSketch Random(int rows, int columns, int nonZeros, Generator generator, IBackend backend)
    {
        if (nonZeros < 1 || nonZeros > rows)
            throw new ArgumentOutOfRangeException(nameof(nonZeros), $"A sketch with {rows} rows takes 1 to {rows} non-zeros per column, got {nonZeros}.");
        var index = new int[nonZeros * columns];
        var value = new float[nonZeros * columns];
        var pool = Enumerable.Range(0, rows).ToArray();
        float magnitude = 1f / MathF.Sqrt(nonZeros);
        for (int j = 0; j < columns; j++)
        {
            for (int k = 0; k < nonZeros; k++)
            {
                int pick = k + generator.NextInt(rows - k);
                (pool[k], pool[pick]) = (pool[pick], pool[k]);
                index[k * columns + j] = pool[k];
                value[k * columns + j] = (generator.NextUInt64() & 1) == 0 ? magnitude : -magnitude;
            }
        }
        return FromHost(rows, index, value, nonZeros, columns, backend);
    }

    /// <summary>A sketch with the given pattern and values (row-major [d, dim]); checks that every column's rows are
    /// distinct and inside [0, <paramref name="rows"/>).</summary>
    public static SparseSketch FromHost(int rows, int[] indices, float[] values, int nonZeros, int columns, IBackend backend)
    {
        if (indices.Length != nonZeros * columns || values.Length != indices.Length)
            throw new ArgumentException($"A sketch of {nonZeros} non-zeros per column over {columns} columns needs {nonZeros * columns} indices and values.");
        var seen = new HashSet<int>();
        for (int j = 0; j < columns; j++)
        {
            seen.Clear();
            for (int k = 0; k < nonZeros; k++)
            {
                int row = indices[k * columns + j];
                if (row < 0 || row >= rows) throw new TensorLiteException($"Sketch column {j} has a row {row} outside [0, {rows}).");
                if (!seen.Add(row)) throw new TensorLiteException($"Sketch column {j} has the row {row} twice; a column's rows must be distinct.");
            }
        }
        var i = Tensor.FromSpan<int>(indices, [nonZeros, columns], DType.Int32, backend).Persist().Tag(MemoryCategory.ProjectorState);
        var v = Tensor.FromSpan<float>(values, [nonZeros, columns], DType.Float32, backend).Persist().Tag(MemoryCategory.ProjectorState);
        return new SparseSketch(rows, i, v);
    }

    /// <summary>Bytes held: 4 per index and 4 per value.</summary>
    public long StateBytes => 8L * NonZeros * Columns;

    /// <summary>The compressed side of <paramref name="x"/>: S·X [r, c] for X [dim, c] (<paramref name="axis"/> 0), or
    /// X·Sᵀ [c, r] for X [c, dim] (axis 1). A new float32 tensor; X must be float32.</summary>
    public Tensor Compress(Tensor x, int axis)
    {
        using var noGrad = GradMode.NoGrad();
        CheckOperand(x, axis, Columns, "compress");
        if (axis == 1)
        {
            // X·Sᵀ = (S·Xᵀ)ᵀ: index-adds of whole rows are much faster than of single elements (the CPU backend's
            // index_add along the last axis runs element by element), and the two transposes are one pass each.
            using var xt = x.T;
            using var xtc = xt.ContiguousNoGrad();
            using var compressed = Compress(xtc, 0);
            using var back = compressed.T;
            return back.ContiguousNoGrad();
        }
        using var xc = x.ContiguousNoGrad();
        var y = Tensor.Zeros(axis == 0 ? [Rows, x.Shape[1]] : [x.Shape[0], Rows], DType.Float32, x.Backend);
        for (int k = 0; k < NonZeros; k++)
        {
            using var index = IndexRow(k);
            using var value = ValueRow(k, axis);
            using var scaled = xc * value;
            x.Backend.IndexAdd(y, axis, index, scaled);
        }
        return y;
    }

    /// <summary>The expanded side of <paramref name="y"/>: Sᵀ·Y [dim, c] for Y [r, c] (<paramref name="axis"/> 0), or
    /// Y·S [c, dim] for Y [c, r] (axis 1). A new float32 tensor; Y must be float32.</summary>
    public Tensor Expand(Tensor y, int axis)
    {
        using var noGrad = GradMode.NoGrad();
        CheckOperand(y, axis, Rows, "expand");
        using var yc = y.ContiguousNoGrad();
        int[] shape = axis == 0 ? [Columns, y.Shape[1]] : [y.Shape[0], Columns];
        Tensor? x = null;
        for (int k = 0; k < NonZeros; k++)
        {
            using var index = IndexRow(k);
            using var value = ValueRow(k, axis);
            using var picked = Tensor.Empty(shape, DType.Float32, y.Backend);
            y.Backend.IndexSelect(yc, axis, index, picked);
            var term = picked * value;
            if (x == null) x = term;
            else
            {
                using (term) x.Backend.Binary(BinaryOp.Add, x, term, x);
            }
        }
        return x!;
    }

    /// <summary>
    /// The gradient of ⟨∇S, ·⟩ restricted to the non-zeros, for ∇S = A·Bᵀ (<paramref name="axis"/> 0: A [r, c],
    /// B [dim, c]) or ∇S = Aᵀ·B (axis 1: A [c, r], B [c, dim]): entry [k, j] = Σ_c A[idx[k, j], c]·B[j, c] (or
    /// Σ_c A[c, idx[k, j]]·B[c, j]). Only the d·dim entries a value can move are computed, never the r×dim product.
    /// A new float32 [d, dim] tensor.
    /// </summary>
    public Tensor ValueGradient(Tensor a, Tensor b, int axis)
    {
        using var noGrad = GradMode.NoGrad();
        CheckOperand(a, axis, Rows, "value gradient");
        CheckOperand(b, axis, Columns, "value gradient");
        using var ac = a.ContiguousNoGrad();
        using var bc = b.ContiguousNoGrad();
        var grad = Tensor.Empty([NonZeros, Columns], DType.Float32, a.Backend);
        for (int k = 0; k < NonZeros; k++)
        {
            using var index = IndexRow(k);
            using var picked = Tensor.Empty(b.Shape, DType.Float32, a.Backend);
            a.Backend.IndexSelect(ac, axis, index, picked);
            using var product = picked * bc;
            using var sum = product.Sum(1 - axis);
            using var row = grad.Narrow(0, k, 1);
            using var flat = row.Reshape(Columns);
            a.Backend.Copy(sum, flat);
        }
        return grad;
    }

    /// <summary>S as a dense float32 [r, dim] tensor (for a change of basis and tests).</summary>
    public Tensor Dense()
    {
        var index = Indices.ToArray<int>();
        var value = Values.ToArray();
        var dense = new float[Rows * Columns];
        for (int e = 0; e < index.Length; e++) dense[index[e] * Columns + e % Columns] = value[e];
        return Tensor.FromSpan<float>(dense, [Rows, Columns], DType.Float32, Values.Backend);
    }

    private Tensor IndexRow(int k)
    {
        using var row = Indices.Narrow(0, k, 1);
        return row.Reshape(Columns);
    }

    /// <summary>Row k of the values shaped to scale X's rows (axis 0: [dim, 1]) or columns (axis 1: [1, dim]).</summary>
    private Tensor ValueRow(int k, int axis)
    {
        using var row = Values.Narrow(0, k, 1);
        return axis == 0 ? row.Reshape(Columns, 1) : row.Reshape(1, Columns);
    }

    private static void CheckOperand(Tensor x, int axis, int length, string op)
    {
        if (x.Rank != 2 || axis is not (0 or 1) || x.Shape[axis] != length || x.DType != DType.Float32)
            throw new ShapeMismatchException($"Sketch {op}: expected a float32 matrix with {length} along axis {axis}, got {x.Describe()}.");
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Indices.Dispose();
        Values.Dispose();
    }
}
