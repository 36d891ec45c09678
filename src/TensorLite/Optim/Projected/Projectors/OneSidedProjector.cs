namespace TensorLite.Optim.Projected;

/// <summary>What every projector that reduces one side of a [m, n] gradient to rank r holds: the checked shape, the
/// update gap and the refresh count (the dense-basis and the sparse projectors share it).</summary>
public abstract class OneSidedProjector
{
    /// <summary>Checks the shape: <paramref name="side"/> Left or Right, 1 ≤ <paramref name="rank"/> ≤
    /// min(<paramref name="m"/>, <paramref name="n"/>), <paramref name="updateGap"/> ≥ 1.</summary>
    protected OneSidedProjector(ProjectionSide side, int m, int n, int rank, int updateGap)
    {
        if (side == ProjectionSide.Auto) throw new ArgumentException("A projector needs a resolved side (Left or Right).", nameof(side));
        if (rank < 1 || rank > Math.Min(m, n))
            throw new ArgumentOutOfRangeException(nameof(rank), $"A projection rank must be between 1 and min(m, n) = {Math.Min(m, n)}, got {rank}.");
        if (updateGap < 1) throw new ArgumentOutOfRangeException(nameof(updateGap), "The projection update gap must be at least 1 step.");
        (Side, Rows, Columns, Rank, UpdateGap) = (side, m, n, rank, updateGap);
    }

    /// <summary>Left or Right (never Auto).</summary>
    public ProjectionSide Side { get; }
    /// <inheritdoc cref="IProjector.Rank"/>
    public int Rank { get; }
    /// <summary>m: the gradient's row count.</summary>
    public int Rows { get; }
    /// <summary>n: the gradient's column count.</summary>
    public int Columns { get; }
    /// <summary>The projected side's length: m for left, n for right.</summary>
    public int Dim => Side == ProjectionSide.Left ? Rows : Columns;
    /// <summary>Steps between basis refreshes (at least 1).</summary>
    public int UpdateGap { get; }
    /// <inheritdoc cref="IProjector.IsIdentity"/>
    public bool IsIdentity => false;
    /// <inheritdoc cref="IProjector.RefreshCount"/>
    public long RefreshCount { get; protected set; }
}
