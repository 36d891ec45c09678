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
    /// <summary>Both sides at once (LSP_Offload's sketches): R = S_l·G·S_rᵀ is [r, r]; a projector's
    /// <see cref="ProjectionSide.Left"/> basis is S_lᵀ [m, r] and its <see cref="ProjectionSide.Right"/> one S_rᵀ [n, r].
    /// Resolved from the projector kind (<see cref="ProjectorFactory.IsTwoSided"/>), never set as an option.</summary>
    Both,
}
