using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

public sealed partial class SparseProjector
{
    /// <summary>R from the factors: only the selected rows dY[:, rows]ᵀ·X (left) or columns dYᵀ·X[:, columns] (right),
    /// r/m (r/n) of the dense product. A refresh forms G (the norm-based selections need every row's norm).</summary>
    public Tensor ProjectFactored(FactoredGradient g)
    {
        var idx = _index ?? throw new InvalidOperationException("The projector has no selection yet; refresh it first.");
        return Side == ProjectionSide.Left ? g.SelectedRows(idx) : g.SelectedColumns(idx);
    }
}
