using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>A projector with a dense basis B [dim, r]; subclasses say how B is (re)computed.</summary>
public abstract class DenseBasisProjector(ProjectionSide side, int m, int n, int rank, int updateGap)
    : OneSidedProjector(side, m, n, rank, updateGap), IProjector
{

    /// <summary>The current basis [Dim, Rank] (null before the first refresh).</summary>
    public abstract Tensor? Basis { get; }

    /// <inheritdoc/>
    public virtual bool IsRefreshDue(long step) => Basis == null || step % UpdateGap == 0;

    /// <inheritdoc/>
    public abstract void Refresh(Tensor g, long step);

    /// <summary>R = Bᵀ·G (left) or G·B (right).</summary>
    public Tensor Project(Tensor g) => Side == ProjectionSide.Left ? WithBasis(g, basisFirst: true, transposed: true) : WithBasis(g, basisFirst: false, transposed: false);

    /// <summary>R from the factors: Bᵀ·G = (dY·B)ᵀ·X (left) or G·B = dYᵀ·(X·B) (right), through the b dimension.</summary>
    public Tensor ProjectFactored(FactoredGradient g)
    {
        var b = Basis ?? throw new InvalidOperationException("The projector has no basis yet; refresh it first.");
        return Side == ProjectionSide.Left ? g.LeftProject(b) : g.Times(b);
    }

    /// <summary><see cref="Refresh"/> from the factors; by default G is formed (kinds that need only products override).</summary>
    public virtual void RefreshFactored(FactoredGradient g, long step)
    {
        using var dense = g.ToDense(DType.Float32);
        Refresh(dense, step);
    }

    /// <summary>back(N) = B·N (left) or N·Bᵀ (right).</summary>
    public Tensor ProjectBack(Tensor n) => Side == ProjectionSide.Left ? WithBasis(n, basisFirst: true, transposed: false) : WithBasis(n, basisFirst: false, transposed: true);

    /// <summary>B (or Bᵀ, a view) times x, or x times it: one GEMM, a new tensor.</summary>
    private Tensor WithBasis(Tensor x, bool basisFirst, bool transposed)
    {
        var b = Basis ?? throw new InvalidOperationException("The projector has no basis yet; refresh it first.");
        using var noGrad = GradMode.NoGrad();
        using var bt = transposed ? b.T : null;
        var factor = bt ?? b;
        return basisFirst ? factor.MatMul(x) : x.MatMul(factor);
    }

    /// <summary>A float32 copy of the basis.</summary>
    public Tensor BasisMatrix()
    {
        using var noGrad = GradMode.NoGrad();
        var b = Basis ?? throw new InvalidOperationException("The projector has no basis yet.");
        return b.DType == DType.Float32 ? b.Clone() : b.To(DType.Float32);
    }

    /// <inheritdoc/>
    public abstract long StateBytes { get; }
    /// <inheritdoc/>
    public abstract IEnumerable<(string Name, Tensor Tensor)> StateTensors();
    /// <inheritdoc/>
    public abstract void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend);
    /// <inheritdoc/>
    public abstract void Dispose();

    /// <summary>G oriented so that the projected side is its rows: G for left, Gᵀ (a view) for right.</summary>
    protected Tensor Oriented(Tensor g) => Side == ProjectionSide.Left ? g.Detach() : g.T;
}
