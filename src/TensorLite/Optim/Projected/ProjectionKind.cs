namespace TensorLite.Optim.Projected;

/// <summary>How the projection basis is computed.</summary>
public enum ProjectionKind
{
    /// <summary>P = I (full rank; no projection).</summary>
    Identity,
    /// <summary>Top-r singular vectors of G by the exact SVD, every UpdateGap steps (GaLore).</summary>
    Svd,
    /// <summary>Top-r singular vectors by the randomized SVD, every UpdateGap steps.</summary>
    RandomizedSvd,
    /// <summary>An orthonormal basis of G·Ω for a Gaussian Ω with r columns (the randomized range finder, Halko et al.
    /// 2011 §4.1), every UpdateGap steps: the subspace the randomized SVD starts from, without its power iterations and
    /// SVD rotation — one GEMM and one thin QR, for sizes where rank-r SVDs would dominate the step.</summary>
    RangeFinder,
    /// <summary>Online PCA updated at every step (Online Subspace Descent).</summary>
    OnlinePca,
    /// <summary>r rows (or columns) of G chosen by <see cref="ProjectedOptions.Selection"/> (GRASS; FRUGAL's columns
    /// and blocks).</summary>
    Sparse,
    /// <summary>A random orthonormal basis (QR of a Gaussian), redrawn every UpdateGap steps (FRUGAL's "random").</summary>
    RandomOrthonormal,
    /// <summary>FRUGAL's whole-matrix mode: round(ρ·k) whole matrices get the stateful optimizer, the rest the state-free
    /// rule, re-chosen every UpdateGap steps.</summary>
    WholeMatrix,
    /// <summary>LSP_Offload's learned sparse sketches on both sides (R = S_l·G·S_rᵀ), refit every UpdateGap steps when
    /// their reconstruction error is over a threshold.</summary>
    Sketch,
}
