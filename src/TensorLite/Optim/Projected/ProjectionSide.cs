namespace TensorLite.Optim.Projected;

/// <summary>Which side of G [m, n] a projector reduces; the names follow GaLore's <c>proj_type</c>.</summary>
public enum ProjectionSide
{
    /// <summary>GaLore's "std" rule: right when m ≥ n (R = G·B is [m, r]), left otherwise (R = Bᵀ·G is [r, n]); so a
    /// square matrix is projected on the right, as galore_projector.py does.</summary>
    Auto,
    /// <summary>Reduce the rows: R = Bᵀ·G is [r, n], with B [m, r].</summary>
    Left,
    /// <summary>Reduce the columns: R = G·B is [m, r], with B [n, r].</summary>
    Right,
    /// <summary>GaLore's "reverse_std": left when m ≥ n, right otherwise (the larger side is reduced).</summary>
    Reverse,
    /// <summary>Both sides at once, R is [r, r]: LSP_Offload's sketches (R = S_l·G·S_rᵀ, resolved from the projector kind,
    /// <see cref="ProjectorFactory.IsTwoSided"/>) and GaLore's "full" (R = U_rᵀ·G·V_r, an option of the SVD kinds,
    /// <see cref="ProjectorFactory.CanProjectBothSides"/>). A projector's <see cref="ProjectionSide.Left"/> basis is
    /// [m, r] (S_lᵀ or U_r) and its <see cref="ProjectionSide.Right"/> one [n, r] (S_rᵀ or V_r).</summary>
    Both,
}
