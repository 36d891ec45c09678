namespace TensorLite.Optim.Projected;

/// <summary>FRUGAL's choice of state-full subspace.</summary>
public enum FrugalSubspace
{
    /// <summary>The top singular vectors of the gradient (exact SVD), as GaLore's basis.</summary>
    Svd,
    /// <summary>The top singular vectors by the randomized SVD.</summary>
    RandomizedSvd,
    /// <summary>A random orthonormal basis.</summary>
    Random,
    /// <summary>Uniformly random rows/columns on the projected side (FRUGAL's column-wise selection).</summary>
    Columns,
    /// <summary>A contiguous block of rows/columns of every matrix (a ρ-slice) that moves on by one block at every
    /// refresh.</summary>
    Blocks,
    /// <summary>The reference's default "frugal" mode (BlockOptimizer): round(ρ·k) of the k projectable matrices get
    /// AdamW whole, the others the state-free rule; the set changes at every refresh in a <see cref="MatrixOrder"/>.</summary>
    Matrices,
}
