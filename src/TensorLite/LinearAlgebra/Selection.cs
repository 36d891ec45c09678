using TensorLite.Autograd;

namespace TensorLite.LinearAlgebra;

/// <summary>How <see cref="Linalg.SelectRows"/> picks k of a matrix's m rows (always k distinct rows).</summary>
public enum RowSelection
{
    /// <summary>The k rows of largest Euclidean norm (ties: lower index first). Deterministic.</summary>
    TopNorm,
    /// <summary>k rows sampled without replacement, each draw with probability ∝ the row's norm ‖a_i‖ among the rows
    /// not yet drawn (successive sampling, by Efraimidis–Spirakis keys u^(1/w)); rows of zero norm only fill in
    /// uniformly once the nonzero rows run out. GRASS's norm-based multinomial selection.</summary>
    NormProportional,
    /// <summary>As <see cref="NormProportional"/> but with weights ‖a_i‖² (sampling ∝ the row's energy).</summary>
    NormSquaredProportional,
    /// <summary>k rows uniformly at random without replacement.</summary>
    Uniform,
    /// <summary>A contiguous block of k rows starting at row (blockIndex·k) mod m, wrapping around the end, so that
    /// blockIndex = 0, 1, 2, … cycles through the rows (FRUGAL-style block rotation).</summary>
    Block,
}

/// <summary>How <see cref="Linalg.ScatterRows"/> writes the rows into the target.</summary>
public enum ScatterMode
{
    /// <summary>target[index[j]] += rows[j]; repeated indices accumulate.</summary>
    Add,
    /// <summary>target[index[j]] = rows[j]; indices must be distinct.</summary>
    Replace,
}

public static partial class Linalg
{
    /// <summary>The Euclidean norm of each row of a [m, n], as a [m] tensor.</summary>
    public static Tensor RowNorms(Tensor a)
    {
        RequireMatrix(a, "row_norms");
        using var noGrad = GradMode.NoGrad();
        using var sq = a.Square();
        using var sum = sq.Sum(1);
        return sum.Sqrt();
    }

    /// <summary>
    /// Picks k distinct rows of a [m, n] by <paramref name="method"/> and returns their indices as an int32 [k] tensor
    /// sorted ascending. The random methods need <paramref name="generator"/> and are deterministic given its state;
    /// <paramref name="blockIndex"/> is used by <see cref="RowSelection.Block"/> only. For columns pass <c>a.T</c>
    /// (or use <see cref="SelectColumns"/>).
    /// </summary>
    public static Tensor SelectRows(Tensor a, int k, RowSelection method, Generator? generator = null, int blockIndex = 0)
    {
        const string op = "select_rows";
        RequireMatrix(a, op);
        int m = a.Shape[0];
        if (k < 1 || k > m)
            throw new ArgumentOutOfRangeException(nameof(k), $"select_rows: k = {k} must be between 1 and the row count {m} of shape {ShapeMath.Format(a.Shape)}.");
        if (method is RowSelection.NormProportional or RowSelection.NormSquaredProportional or RowSelection.Uniform && generator == null)
            throw new ArgumentNullException(nameof(generator), $"select_rows: {method} sampling needs a generator.");
        using var noGrad = GradMode.NoGrad();
        int[] picked;
        switch (method)
        {
            case RowSelection.TopNorm:
            {
                var norms = HostRowNorms(a);
                picked = Enumerable.Range(0, m).OrderByDescending(i => norms[i]).ThenBy(i => i).Take(k).ToArray();
                break;
            }
            case RowSelection.NormProportional:
            case RowSelection.NormSquaredProportional:
            {
                var norms = HostRowNorms(a);
                bool squared = method == RowSelection.NormSquaredProportional;
                // Efraimidis–Spirakis: the k largest keys log(u)/w are a weighted sample without replacement.
                var keys = new double[m];
                var tie = new double[m];
                for (int i = 0; i < m; i++)
                {
                    double u = 1.0 - generator!.NextDouble(); // (0, 1]
                    double w = squared ? (double)norms[i] * norms[i] : norms[i];
                    keys[i] = w > 0 && double.IsFinite(w) ? Math.Log(u) / w : double.NegativeInfinity;
                    tie[i] = u;
                }
                picked = Enumerable.Range(0, m).OrderByDescending(i => keys[i]).ThenByDescending(i => tie[i]).ThenBy(i => i)
                    .Take(k).ToArray();
                break;
            }
            case RowSelection.Uniform:
            {
                var perm = Enumerable.Range(0, m).ToArray();
                for (int i = 0; i < k; i++)
                {
                    int j = i + generator!.NextInt(m - i);
                    (perm[i], perm[j]) = (perm[j], perm[i]);
                }
                picked = perm[..k];
                break;
            }
            case RowSelection.Block:
            {
                long start = ((long)blockIndex * k % m + m) % m;
                picked = Enumerable.Range(0, k).Select(i => (int)((start + i) % m)).ToArray();
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(method), $"select_rows: unknown selection method {method}.");
        }
        Array.Sort(picked);
        return Tensor.FromSpan<int>(picked, [k], DType.Int32, a.Backend);
    }

    /// <summary><see cref="SelectRows"/> on the columns of a [m, n]: int32 indices [k] of k distinct columns, ascending.</summary>
    public static Tensor SelectColumns(Tensor a, int k, RowSelection method, Generator? generator = null, int blockIndex = 0)
    {
        RequireMatrix(a, "select_columns");
        using var at = a.T;
        return SelectRows(at, k, method, generator, blockIndex);
    }

    private static float[] HostRowNorms(Tensor a)
    {
        using var norms = RowNorms(a);
        return norms.ToArray();
    }

    /// <summary>The rows of a [m, n] at index [k] (int32 or int64), as a new [k, n] tensor (one memcpy per row on the CPU).</summary>
    public static Tensor GatherRows(Tensor a, Tensor index)
    {
        RequireMatrix(a, "gather_rows");
        using var noGrad = GradMode.NoGrad();
        return a.IndexSelect(0, index);
    }

    /// <summary>The columns of a [m, n] at index [k], as a new [m, k] tensor.</summary>
    public static Tensor GatherColumns(Tensor a, Tensor index)
    {
        RequireMatrix(a, "gather_columns");
        using var noGrad = GradMode.NoGrad();
        return a.IndexSelect(1, index);
    }

    /// <summary>
    /// Out of place: a copy of target [m, n] with rows [k, n] added at (or, for <see cref="ScatterMode.Replace"/>,
    /// written over) the rows at index [k]. Replace needs distinct indices. The inverse of <see cref="GatherRows"/>:
    /// ScatterRows(t, i, GatherRows(t, i), Replace) equals t. For an in-place add into a contiguous target use
    /// <see cref="ScatterAddRowsInPlace"/>.
    /// </summary>
    public static Tensor ScatterRows(Tensor target, Tensor index, Tensor rows, ScatterMode mode = ScatterMode.Add) =>
        Scatter(target, index, rows, mode, 0, "scatter_rows");

    /// <summary>Out of place: a copy of target [m, n] with columns [m, k] added at (or written over) the columns at index [k].</summary>
    public static Tensor ScatterColumns(Tensor target, Tensor index, Tensor columns, ScatterMode mode = ScatterMode.Add) =>
        Scatter(target, index, columns, mode, 1, "scatter_columns");

    private static Tensor Scatter(Tensor target, Tensor index, Tensor src, ScatterMode mode, int dim, string op)
    {
        RequireMatrix(target, op, "target");
        RequireMatrix(src, op, dim == 0 ? "rows" : "columns");
        using var noGrad = GradMode.NoGrad();
        if (mode == ScatterMode.Add) return target.IndexAdd(dim, index, src);
        if (mode != ScatterMode.Replace) throw new ArgumentOutOfRangeException(nameof(mode), $"{op}: unknown scatter mode {mode}.");
        Tensor.RequireIndex(index, op, "index");
        var values = index.DType == DType.Int64 ? index.ToArray<long>() : index.ToArray<int>().Select(v => (long)v).ToArray();
        if (values.Distinct().Count() != values.Length)
            throw new ArgumentException($"{op}: Replace needs distinct indices, but the index repeats a value.", nameof(index));
        // Exact replacement: scatter the new slices into zeros, mark the touched slices, and select per slice.
        using var scattered0 = Tensor.Zeros(target.Shape, DType.Float32, target.Backend);
        using var scattered = scattered0.IndexAdd(dim, index, src);
        int[] maskShape = dim == 0 ? [target.Shape[0], 1] : [1, target.Shape[1]];
        int[] onesShape = dim == 0 ? [values.Length, 1] : [1, values.Length];
        using var mask0 = Tensor.Zeros(maskShape, DType.Float32, target.Backend);
        using var ones = Tensor.Ones(onesShape, DType.Float32, target.Backend);
        using var mask = mask0.IndexAdd(dim, index, ones);
        return Tensor.Where(mask, scattered, target);
    }

    /// <summary>In place: target[index[j]] += rows[j] for a contiguous float32 target [m, n] and rows [k, n] (repeats
    /// accumulate in index order). Records no autograd history; use it for optimizer-side updates.</summary>
    public static void ScatterAddRowsInPlace(Tensor target, Tensor index, Tensor rows)
    {
        const string op = "scatter_add_rows_in_place";
        RequireMatrix(target, op, "target");
        RequireMatrix(rows, op, "rows");
        Tensor.RequireIndex(index, op, "index");
        RequireSameBackend(target, rows, op);
        RequireSameBackend(target, index, op);
        if (!target.IsContiguous)
            throw new ArgumentException($"{op}: the target {target.Describe()} must be contiguous to be updated in place.", nameof(target));
        if (index.Rank != 1 || rows.Shape[0] != index.Numel || rows.Shape[1] != target.Shape[1])
            throw new ShapeMismatchException($"{op}: rows {ShapeMath.Format(rows.Shape)} must be [index length, {target.Shape[1]}] for index {ShapeMath.Format(index.Shape)} and target {ShapeMath.Format(target.Shape)}.");
        using var noGrad = GradMode.NoGrad();
        using var ic = index.ContiguousNoGrad();
        long position = target.Backend.FindIndexOutOfRange(ic, target.Shape[0], out long value);
        if (position >= 0)
            throw new ArgumentOutOfRangeException(nameof(index), $"{op}: index {value} at position {position} is out of range for {target.Shape[0]} rows.");
        using var rc = rows.ContiguousNoGrad();
        target.Backend.IndexAdd(target, 0, ic, rc);
    }
}
