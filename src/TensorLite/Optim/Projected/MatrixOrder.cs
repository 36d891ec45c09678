namespace TensorLite.Optim.Projected;

/// <summary>How FRUGAL's whole-matrix mode picks the state-full matrices at each refresh (the reference's block_order).</summary>
public enum MatrixOrder
{
    /// <summary>A fresh random set of round(ρ·k) matrices at every refresh.</summary>
    Random,
    /// <summary>Consecutive matrices in parameter order, moving on by round(ρ·k) at each refresh (wrapping around).</summary>
    Ascending,
    /// <summary>As <see cref="Ascending"/>, starting from the last matrix and moving backwards (the reference's
    /// pre-training scripts use this).</summary>
    Descending,
    /// <summary>Pairs from both ends walking inwards: matrix j together with matrix k − 1 − j, round(ρ·k)/2 pairs per
    /// refresh, j moving on through 0 … ⌊k/2⌋ − 1 (wrapping around); with an odd k the middle matrix is never state-full.
    /// round(ρ·k) must be even (the reference asserts it).</summary>
    Mirror,
}
