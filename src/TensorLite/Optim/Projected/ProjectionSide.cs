namespace TensorLite.Optim.Projected;

/// <summary>Which side of G [m, n] a projector reduces; the names follow GaLore's <c>proj_type</c>.</summary>
public enum ProjectionSide
{
    /// <summary>GaLore's "std" rule: right when m ≥ n (R = G·B is [m, r]), left otherwise (R = Bᵀ·G is [r, n]); so a
    /// square matrix is projected on the right, as galore_projector.py does.</summary>
    Auto,
    Left,
    Right,
    /// <summary>GaLore's "reverse_std": left when m ≥ n, right otherwise (the larger side is reduced).</summary>
    Reverse,
}
