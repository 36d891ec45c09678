namespace TensorLite.Optim.Projected;

/// <summary>FRUGAL's choice of state-full subspace.</summary>
public enum FrugalSubspace
{
    Svd,
    RandomizedSvd,
    /// <summary>A random orthonormal basis.</summary>
    Random,
    /// <summary>Uniformly random rows/columns on the projected side (FRUGAL's column-wise selection).</summary>
    Columns,
    /// <summary>A contiguous block of rows/columns that moves on by one block at every refresh (FRUGAL's blocks).</summary>
    Blocks,
}
