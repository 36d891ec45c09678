namespace TensorLite.Optim.Projected;

/// <summary>Which side of G [m, n] a projector reduces.</summary>
public enum ProjectionSide
{
    /// <summary>GaLore's rule: left when m ≤ n (R = Bᵀ·G is [r, n]), right otherwise (R = G·B is [m, r]).</summary>
    Auto,
    Left,
    Right,
}
