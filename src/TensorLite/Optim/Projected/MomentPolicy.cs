namespace TensorLite.Optim.Projected;

/// <summary>What happens to the inner optimizer's moments when the projection basis is refreshed.</summary>
public enum MomentPolicy
{
    /// <summary>Leave them as they are (GaLore's and OSD's code): the old coordinates are read in the new basis.</summary>
    Keep,
    /// <summary>Zero them and restart bias correction (GRASS, FRUGAL).</summary>
    Reset,
    /// <summary>Carry them into the new basis: M ← C·M with C = B_newᵀ·B_old (left; M·Cᵀ for right), second moments
    /// by C∘C; a two-sided projector changes both: M ← L·M·Rᵀ, V ← (L∘L)·V·(R∘R)ᵀ (LSP_Offload's transfer).</summary>
    Rotate,
}
