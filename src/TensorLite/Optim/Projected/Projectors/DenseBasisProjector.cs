using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>A projector with a dense basis B [dim, r]; subclasses say how B is (re)computed.</summary>
public abstract class DenseBasisProjector : IProjector
{
    protected DenseBasisProjector(ProjectionSide side, int m, int n, int rank, int updateGap)
    {
        if (side == ProjectionSide.Auto) throw new ArgumentException("A projector needs a resolved side (Left or Right).", nameof(side));
        Side = side;
        Rows = m;
        Columns = n;
        Dim = side == ProjectionSide.Left ? m : n;
        if (rank < 1 || rank > Math.Min(m, n))
            throw new ArgumentOutOfRangeException(nameof(rank), $"A projection rank must be between 1 and min(m, n) = {Math.Min(m, n)}, got {rank}.");
        if (updateGap < 1) throw new ArgumentOutOfRangeException(nameof(updateGap), "The projection update gap must be at least 1 step.");
        Rank = rank;
        UpdateGap = updateGap;
    }

    public ProjectionSide Side { get; }
    public int Rank { get; }
    public int Rows { get; }
    public int Columns { get; }
    /// <summary>The projected side's length: m for left, n for right.</summary>
    public int Dim { get; }
    public int UpdateGap { get; }
    public bool IsIdentity => false;
    public long RefreshCount { get; protected set; }

    /// <summary>The current basis [Dim, Rank] (null before the first refresh).</summary>
    public abstract Tensor? Basis { get; }

    public virtual bool IsRefreshDue(long step) => Basis == null || step % UpdateGap == 0;

    public abstract void Refresh(Tensor g, long step);

    public Tensor Project(Tensor g)
    {
        var b = Basis ?? throw new InvalidOperationException("The projector has no basis yet; refresh it first.");
        using var noGrad = GradMode.NoGrad();
        if (Side == ProjectionSide.Right) return g.MatMul(b);
        using var bt = b.T;
        return bt.MatMul(g);
    }

    public Tensor ProjectBack(Tensor n)
    {
        var b = Basis ?? throw new InvalidOperationException("The projector has no basis yet; refresh it first.");
        using var noGrad = GradMode.NoGrad();
        if (Side == ProjectionSide.Left) return b.MatMul(n);
        using var bt = b.T;
        return n.MatMul(bt);
    }

    /// <summary>A float32 copy of the basis.</summary>
    public Tensor BasisMatrix()
    {
        using var noGrad = GradMode.NoGrad();
        var b = Basis ?? throw new InvalidOperationException("The projector has no basis yet.");
        return b.DType == DType.Float32 ? b.Clone() : b.To(DType.Float32);
    }

    public abstract long StateBytes { get; }
    public abstract IEnumerable<(string Name, Tensor Tensor)> StateTensors();
    public abstract void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend);
    public abstract void Dispose();

    /// <summary>G oriented so that the projected side is its rows: G for left, Gᵀ (a view) for right.</summary>
    protected Tensor Oriented(Tensor g) => Side == ProjectionSide.Left ? g.Detach() : g.T;
}
