using TensorLite.Autograd;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Optim.Projected;

/// <summary>
/// GaLore's two-sided "full" projection (<c>proj_type='full'</c> in galore_projector.py): both top-r singular bases of
/// G [m, n], U_r [m, r] and V_r [n, r], from one SVD at each refresh; R = U_rᵀ·G·V_r is [r, r] and back(N) = U_r·N·V_rᵀ.
/// The inner optimizer's moments are [r, r]. The exact SVD forms G on refresh steps; the randomized one runs on the
/// factors. Between refreshes R comes from the factors as (dY·U_r)ᵀ·(X·V_r) without forming G. Both bases are stored in
/// the basis dtype, 2 or 4 bytes times (m + n)·r.
/// </summary>
public sealed class TwoSidedSvdProjector : IProjector
{
    private readonly Generator _generator;
    private readonly int _oversampling, _powerIterations;
    private Tensor? _left, _right;

    /// <summary>The projector of one [<paramref name="m"/>, <paramref name="n"/>] matrix at rank
    /// <paramref name="rank"/> (1 ≤ r ≤ min(m, n)), refreshed every <paramref name="updateGap"/> steps by the exact SVD or,
    /// when <paramref name="randomized"/>, the randomized one drawn from <paramref name="generator"/>.</summary>
    public TwoSidedSvdProjector(int m, int n, int rank, int updateGap, bool randomized, Generator generator,
        int oversampling = 10, int powerIterations = 2, DType basisDType = DType.Float32)
    {
        if (rank < 1 || rank > Math.Min(m, n))
            throw new ArgumentOutOfRangeException(nameof(rank), $"A projection rank must be between 1 and min(m, n) = {Math.Min(m, n)}, got {rank}.");
        if (updateGap < 1) throw new ArgumentOutOfRangeException(nameof(updateGap), "The projection update gap must be at least 1 step.");
        if (basisDType is not (DType.Float32 or DType.BFloat16))
            throw new ArgumentException($"A projection basis is stored as float32 or bfloat16, not {basisDType.Name()}.", nameof(basisDType));
        (Rows, Columns, Rank, UpdateGap, Randomized, BasisDType) = (m, n, rank, updateGap, randomized, basisDType);
        (_generator, _oversampling, _powerIterations) = (generator, oversampling, powerIterations);
    }

    /// <inheritdoc/>
    public ProjectionSide Side => ProjectionSide.Both;
    /// <inheritdoc/>
    public int Rank { get; }
    /// <summary>m: the gradient's row count.</summary>
    public int Rows { get; }
    /// <summary>n: the gradient's column count.</summary>
    public int Columns { get; }
    /// <summary>Steps between refreshes.</summary>
    public int UpdateGap { get; }
    /// <summary>Whether the bases come from the randomized SVD.</summary>
    public bool Randomized { get; }
    /// <summary>The dtype both bases are stored in.</summary>
    public DType BasisDType { get; }
    /// <inheritdoc/>
    public bool IsIdentity => false;
    /// <inheritdoc/>
    public long RefreshCount { get; private set; }

    /// <summary>U_r [m, r] (null before the first refresh).</summary>
    public Tensor? Left => _left;
    /// <summary>V_r [n, r] (null before the first refresh).</summary>
    public Tensor? Right => _right;

    /// <inheritdoc/>
    public bool IsRefreshDue(long step) => _left == null || step % UpdateGap == 0;

    /// <inheritdoc/>
    public void Refresh(Tensor g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        Install(Randomized ? LA.RandomizedSvd(g, Rank, _generator, _oversampling, _powerIterations) : LA.Svd(g, Rank));
    }

    /// <summary>The exact SVD forms G; the randomized one runs on the factors (<see cref="SvdProjector"/>'s algorithm,
    /// same draws).</summary>
    public void RefreshFactored(FactoredGradient g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        if (!Randomized)
        {
            using var dense = g.ToDense(DType.Float32);
            Refresh(dense, step);
            return;
        }
        Install(SvdProjector.FactoredRandomizedSvd(g, Rank, _generator, _oversampling, _powerIterations));
    }

    private void Install((Tensor U, Tensor S, Tensor Vt) svd)
    {
        var (u, s, vt) = svd;
        s.Dispose();
        Tensor v;
        using (vt)
        using (var view = vt.T)
            v = view.Clone();
        DisposeBases();
        _left = Stored(u);
        _right = Stored(v);
        RefreshCount++;
    }

    private Tensor Stored(Tensor basis)
    {
        if (BasisDType == DType.Float32) return basis.Persist();
        using (basis) return basis.To(BasisDType).Persist();
    }

    /// <summary>R = U_rᵀ·G·V_r [r, r].</summary>
    public Tensor Project(Tensor g)
    {
        var (u, v) = Bases();
        using var noGrad = GradMode.NoGrad();
        using var ut = u.T;
        using var ug = ut.MatMul(g);
        return ug.MatMul(v);
    }

    /// <summary>R from the factors: (dY·U_r)ᵀ·(X·V_r), never forming G.</summary>
    public Tensor ProjectFactored(FactoredGradient g)
    {
        var (u, v) = Bases();
        return g.BothSidesProject(u, v);
    }

    /// <summary>back(N) = U_r·N·V_rᵀ [m, n].</summary>
    public Tensor ProjectBack(Tensor n)
    {
        var (u, v) = Bases();
        using var noGrad = GradMode.NoGrad();
        using var un = u.MatMul(n);
        using var vt = v.T;
        return un.MatMul(vt);
    }

    /// <summary>A two-sided projector has one basis per side; ask for it with <see cref="BasisMatrix(ProjectionSide)"/>.</summary>
    public Tensor BasisMatrix() =>
        throw new InvalidOperationException("The full projection reduces both sides; ask for the left or the right basis.");

    /// <summary>U_r [m, r] (left) or V_r [n, r] (right) as a float32 copy.</summary>
    public Tensor BasisMatrix(ProjectionSide side)
    {
        var (u, v) = Bases();
        var basis = side switch
        {
            ProjectionSide.Left => u,
            ProjectionSide.Right => v,
            _ => throw new ArgumentException($"The full projection has a left and a right basis, not {side}.", nameof(side)),
        };
        using var noGrad = GradMode.NoGrad();
        return basis.DType == DType.Float32 ? basis.Clone() : basis.To(DType.Float32);
    }

    /// <inheritdoc/>
    public long StateBytes => _left == null ? 0 : (long)BasisDType.SizeInBytes() * ((long)Rows + Columns) * Rank;

    /// <summary>"left.basis" (U_r) and "right.basis" (V_r).</summary>
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        if (_left == null || _right == null) yield break;
        yield return ("left.basis", _left);
        yield return ("right.basis", _right);
    }

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend)
    {
        DisposeBases();
        RefreshCount = refreshCount;
        if (!state.ContainsKey(prefix + "left.basis")) return;
        _left = Tensor.Empty([Rows, Rank], BasisDType, backend).Persist();
        Optimizer.CopyStateInto(state, prefix + "left.basis", _left);
        _right = Tensor.Empty([Columns, Rank], BasisDType, backend).Persist();
        Optimizer.CopyStateInto(state, prefix + "right.basis", _right);
    }

    private (Tensor U, Tensor V) Bases() =>
        _left != null && _right != null ? (_left, _right) : throw new InvalidOperationException("The projector has no bases yet; refresh it first.");

    private void DisposeBases()
    {
        _left?.Dispose();
        _right?.Dispose();
        _left = _right = null;
    }

    /// <inheritdoc/>
    public void Dispose() => DisposeBases();
}
