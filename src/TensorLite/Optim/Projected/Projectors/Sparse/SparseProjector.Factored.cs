using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

public sealed partial class SparseProjector
{
    /// <summary>R from the factors: only the selected rows dY[:, rows]ᵀ·X (left) or columns dYᵀ·X[:, columns] (right),
    /// r/m (r/n) of the dense product, scaled by ρ when re-scaled. A refresh forms G (the norm-based selections need
    /// every row's norm).</summary>
    public Tensor ProjectFactored(FactoredGradient g)
    {
        var idx = _index ?? throw new InvalidOperationException("The projector has no selection yet; refresh it first.");
        var picked = Side == ProjectionSide.Left ? g.SelectedRows(idx) : g.SelectedColumns(idx);
        if (_scale == null) return picked;
        using (picked) return Scaled(picked);
    }

    /// <summary>Where <see cref="ProjectBack"/> of <paramref name="n"/> lands, without the zeros: the distinct selected
    /// indices (int32, ascending) and the values there (rows [u, n] for left, columns [m, u] for right) — each ρ_j·N_j,
    /// summed over the draws of a row picked more than once. With distinct, unscaled picks these are the selection and
    /// <paramref name="n"/> itself (a copy).</summary>
    internal (Tensor Index, Tensor Values) Landing(Tensor n)
    {
        var idx = _index ?? throw new InvalidOperationException("The projector has no selection yet; refresh it first.");
        using var noGrad = GradMode.NoGrad();
        var picks = idx.ToArray<int>();
        var distinct = picks.Distinct().Order().ToArray();
        if (_scale == null && distinct.Length == picks.Length && picks.SequenceEqual(distinct)) return (idx.Detach(), n.Detach());
        int axis = Side == ProjectionSide.Left ? 0 : 1;
        var position = picks.Select(p => Array.BinarySearch(distinct, p)).ToArray();
        using var positions = Tensor.FromSpan<int>(position, [position.Length], DType.Int32, n.Backend);
        using var scaled = Scaled(n);
        int[] shape = axis == 0 ? [distinct.Length, scaled.Shape[1]] : [scaled.Shape[0], distinct.Length];
        using var zeros = Tensor.Zeros(shape, DType.Float32, n.Backend);
        return (Tensor.FromSpan<int>(distinct, [distinct.Length], DType.Int32, n.Backend), zeros.IndexAdd(axis, positions, scaled));
    }
}
