using TensorLite.Autograd;
using TensorLite.LinearAlgebra;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Optim.Projected;

/// <summary>
/// Maps one 2-D parameter's gradient G [m, n] to a small R and an update for R back to [m, n]. A left projector
/// (<see cref="ProjectionSide.Left"/>) has a basis B [m, r] and R = Bᵀ·G [r, n], back(N) = B·N; a right one has
/// B [n, r] and R = G·B [m, r], back(N) = N·Bᵀ. Sparse projectors use a selection (one-hot) B without forming it.
/// The optimizer calls <see cref="Refresh"/> before projecting whenever <see cref="IsRefreshDue"/> says so.
/// </summary>
public interface IProjector : IDisposable
{
    /// <summary>Left or Right (never Auto).</summary>
    ProjectionSide Side { get; }

    /// <summary>r: the size of the projected dimension.</summary>
    int Rank { get; }

    /// <summary>Whether back(Project(G)) = G exactly (P = I): the residual is then zero.</summary>
    bool IsIdentity { get; }

    /// <summary>How many times <see cref="Refresh"/> has run (checkpointed by the optimizer).</summary>
    long RefreshCount { get; }

    /// <summary>Whether the basis must be recomputed at this 0-based step of the parameter.</summary>
    bool IsRefreshDue(long step);

    /// <summary>Recomputes the basis from the current gradient.</summary>
    void Refresh(Tensor g, long step);

    /// <summary>R, a new tensor the caller owns.</summary>
    Tensor Project(Tensor g);

    /// <summary>The full-size [m, n] image of an R-shaped tensor, a new tensor the caller owns.</summary>
    Tensor ProjectBack(Tensor n);

    /// <summary>The basis B [dim, r] as a new dense tensor (one-hot columns for a selection), for changes of basis
    /// and tests.</summary>
    Tensor BasisMatrix();

    long StateBytes { get; }

    /// <summary>The state tensors, named by a suffix ("basis", "index", …). Empty before the first refresh.</summary>
    IEnumerable<(string Name, Tensor Tensor)> StateTensors();

    /// <summary>Restores the state saved by <see cref="StateTensors"/> (keys "{prefix}{suffix}") and the refresh count.</summary>
    void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend);
}

/// <summary>P = I: the gradient passes through unchanged (full rank). With the AdamW inner optimizer and scale 1 this
/// is AdamW.</summary>
public sealed class IdentityProjector(int m, int n) : IProjector
{
    public ProjectionSide Side => ProjectionSide.Left;
    public int Rank => m;
    public bool IsIdentity => true;
    public long RefreshCount => 0;
    public bool IsRefreshDue(long step) => false;
    public void Refresh(Tensor g, long step) { }
    public Tensor Project(Tensor g) => g.Detach();
    public Tensor ProjectBack(Tensor n) => n.Detach();

    public Tensor BasisMatrix()
    {
        var eye = new float[m * m];
        for (int i = 0; i < m; i++) eye[i * m + i] = 1;
        return Tensor.FromArray(eye, m, m);
    }

    public long StateBytes => 0;
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors() => [];
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend) { }
    public void Dispose() { }
    internal int Columns => n;
}

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

/// <summary>A stored basis that is replaced at each refresh (SVD, randomized SVD, random orthonormal). It is computed in
/// float32 and stored in <see cref="BasisDType"/>: bfloat16 halves the projector's memory (GaLore stores its projection in
/// the weights' dtype); projections then run through the mixed-precision GEMM with fp32 accumulation.</summary>
public abstract class StoredBasisProjector(ProjectionSide side, int m, int n, int rank, int updateGap, DType basisDType = DType.Float32)
    : DenseBasisProjector(side, m, n, rank, updateGap)
{
    private Tensor? _basis;
    public override Tensor? Basis => _basis;
    public DType BasisDType { get; } = basisDType is DType.Float32 or DType.BFloat16 ? basisDType
        : throw new ArgumentException($"A projection basis is stored as float32 or bfloat16, not {basisDType.Name()}.", nameof(basisDType));

    /// <summary>The new basis [Dim, Rank] computed from G (any layout; the caller keeps ownership of nothing it returns).</summary>
    protected abstract Tensor ComputeBasis(Tensor g);

    public override void Refresh(Tensor g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        var next = ComputeBasis(g);
        if (!next.IsContiguous || next.Shape[0] != Dim || next.Shape[1] != Rank)
            throw new InvalidOperationException($"A projector computed a basis {ShapeMath.Format(next.Shape)}; [{Dim}, {Rank}] contiguous was expected.");
        _basis?.Dispose();
        if (BasisDType == DType.Float32) _basis = next.Persist();
        else using (next) _basis = next.To(BasisDType).Persist();
        RefreshCount++;
    }

    public override long StateBytes => _basis == null ? 0 : (long)BasisDType.SizeInBytes() * _basis.Numel;

    public override IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        if (_basis != null) yield return ("basis", _basis);
    }

    public override void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend)
    {
        _basis?.Dispose();
        _basis = null;
        if (state.ContainsKey(prefix + "basis"))
        {
            _basis = Tensor.Empty([Dim, Rank], BasisDType, backend).Persist();
            Optimizer.CopyStateInto(state, prefix + "basis", _basis);
        }
        RefreshCount = refreshCount;
    }

    public override void Dispose()
    {
        _basis?.Dispose();
        _basis = null;
    }
}

/// <summary>GaLore's projection: the top-r singular vectors of G, left (U_r) for a left projector and right (V_r) for a
/// right one, by the exact SVD or the randomized one (Halko et al., drawing its sketch from the optimizer's generator).</summary>
public sealed class SvdProjector(ProjectionSide side, int m, int n, int rank, int updateGap, bool randomized,
    Generator generator, int oversampling = 10, int powerIterations = 2, DType basisDType = DType.Float32)
    : StoredBasisProjector(side, m, n, rank, updateGap, basisDType)
{
    public bool Randomized { get; } = randomized;

    protected override Tensor ComputeBasis(Tensor g)
    {
        var (u, s, vt) = Randomized ? LA.RandomizedSvd(g, Rank, generator, oversampling, powerIterations) : LA.Svd(g, Rank);
        s.Dispose();
        if (Side == ProjectionSide.Left)
        {
            vt.Dispose();
            return u;
        }
        u.Dispose();
        using (vt)
        using (var v = vt.T)
            return v.Clone();
    }
}

/// <summary>The randomized range finder: an orthonormal basis of G·Ω (left) or Gᵀ·Ω (right), Ω a Gaussian [other, r] drawn
/// from the projector's generator. Its span estimates the top-r singular subspace (exactly it when rank(G) ≤ r).</summary>
public sealed class RangeFinderProjector(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator,
    DType basisDType = DType.Float32)
    : StoredBasisProjector(side, m, n, rank, updateGap, basisDType)
{
    protected override Tensor ComputeBasis(Tensor g)
    {
        using var oriented = Oriented(g);
        using var omega = Tensor.RandN([oriented.Shape[1], Rank], generator, 1f, g.Backend);
        using var sketch = oriented.MatMul(omega);
        return LA.Orthonormalize(sketch);
    }
}

/// <summary>FRUGAL's random subspace: a random orthonormal basis (QR of a Gaussian [dim, r]) redrawn at each refresh;
/// the gradient is not looked at.</summary>
public sealed class RandomOrthonormalProjector(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator,
    DType basisDType = DType.Float32)
    : StoredBasisProjector(side, m, n, rank, updateGap, basisDType)
{
    protected override Tensor ComputeBasis(Tensor g)
    {
        using var gauss = Tensor.RandN([Dim, Rank], generator, 1f, g.Backend);
        return LA.Orthonormalize(gauss);
    }
}

/// <summary>
/// Online Subspace Descent's projection: P [dim, r] starts as a random orthonormal basis and is updated at every step
/// by one step of <see cref="OnlinePca"/> (Adam or SGD on ‖G − P·Pᵀ·G‖², optionally re-orthonormalized by QR), never
/// by an SVD. The update uses the current gradient before it is projected, so P_t is fitted to G_0..G_t (Algorithm 1
/// of the paper fits the same sequence of P but uses each one a step later).
/// </summary>
public sealed class OnlinePcaProjector(ProjectionSide side, int m, int n, int rank, Generator generator, float learningRate,
    OnlinePcaOptimizer optimizer = OnlinePcaOptimizer.Adam, bool reorthonormalize = false, float beta1 = 0.9f, float beta2 = 0.999f)
    : DenseBasisProjector(side, m, n, rank, 1)
{
    private OnlinePca? _pca;

    public OnlinePca? Pca => _pca;
    public float LearningRate { get; set; } = learningRate;
    public override Tensor? Basis => _pca?.Projection;
    public override bool IsRefreshDue(long step) => true;

    public override void Refresh(Tensor g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        _pca ??= OnlinePca.RandomInit(Dim, Rank, generator, LearningRate, optimizer, reorthonormalize, g.Backend);
        _pca.LearningRate = LearningRate;
        using var oriented = Oriented(g);
        _pca.Update(oriented);
        RefreshCount++;
    }

    public override long StateBytes =>
        _pca == null ? 0 : 4L * _pca.Projection.Numel * (optimizer == OnlinePcaOptimizer.Adam ? 3 : 1);

    public override IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        if (_pca == null) yield break;
        yield return ("basis", _pca.Projection);
        if (_pca.FirstMoment != null)
        {
            yield return ("pca_exp_avg", _pca.FirstMoment);
            yield return ("pca_exp_avg_sq", _pca.SecondMoment!);
        }
    }

    public override void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend)
    {
        _pca?.Dispose();
        _pca = null;
        RefreshCount = refreshCount;
        if (!state.TryGetValue(prefix + "basis", out var basis)) return;
        if (basis.Rank != 2 || basis.Shape[0] != Dim || basis.Shape[1] != Rank)
            throw new TensorLiteException($"Optimizer state '{prefix}basis' has shape {ShapeMath.Format(basis.Shape)}, but the projection needs [{Dim}, {Rank}].");
        using var noGrad = GradMode.NoGrad();
        using var b32 = ProjectedOptimizer.ToBackend(basis, backend);
        _pca = new OnlinePca(b32, LearningRate, optimizer, reorthonormalize, beta1, beta2);
        using var m1 = state.TryGetValue(prefix + "pca_exp_avg", out var a) ? ProjectedOptimizer.ToBackend(a, backend) : null;
        using var m2 = state.TryGetValue(prefix + "pca_exp_avg_sq", out var b) ? ProjectedOptimizer.ToBackend(b, backend) : null;
        _pca.LoadState(b32, m1, m2, refreshCount);
    }

    public override void Dispose()
    {
        _pca?.Dispose();
        _pca = null;
    }
}

/// <summary>
/// GRASS's sparse projection (and FRUGAL's column / block subspaces): r whole rows of G (left) or columns (right) chosen
/// by <see cref="RowSelection"/> — top norms, norm-proportional or uniform sampling, or a contiguous block that moves on
/// by one block per refresh. R = G[rows] (or G[:, columns]); back(N) scatters N into zeros. The state is the r int32 indices.
/// </summary>
public sealed class SparseProjector : IProjector
{
    private readonly Generator _generator;
    private Tensor? _index;

    public SparseProjector(ProjectionSide side, int m, int n, int rank, int updateGap, RowSelection selection, Generator generator)
    {
        if (side == ProjectionSide.Auto) throw new ArgumentException("A projector needs a resolved side (Left or Right).", nameof(side));
        if (rank < 1 || rank > Math.Min(m, n))
            throw new ArgumentOutOfRangeException(nameof(rank), $"A projection rank must be between 1 and min(m, n) = {Math.Min(m, n)}, got {rank}.");
        if (updateGap < 1) throw new ArgumentOutOfRangeException(nameof(updateGap), "The projection update gap must be at least 1 step.");
        Side = side;
        Rows = m;
        Columns = n;
        Rank = rank;
        UpdateGap = updateGap;
        Selection = selection;
        _generator = generator;
    }

    public ProjectionSide Side { get; }
    public int Rows { get; }
    public int Columns { get; }
    public int Rank { get; }
    public int UpdateGap { get; }
    public RowSelection Selection { get; }
    public bool IsIdentity => false;
    public long RefreshCount { get; private set; }
    private int Dim => Side == ProjectionSide.Left ? Rows : Columns;

    /// <summary>The selected indices (int32 [r], ascending), or null before the first refresh.</summary>
    public Tensor? Index => _index;

    public bool IsRefreshDue(long step) => _index == null || step % UpdateGap == 0;

    public void Refresh(Tensor g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        int block = (int)(RefreshCount % int.MaxValue);
        var next = Side == ProjectionSide.Left
            ? LA.SelectRows(g, Rank, Selection, _generator, block)
            : LA.SelectColumns(g, Rank, Selection, _generator, block);
        _index?.Dispose();
        _index = next.Persist();
        RefreshCount++;
    }

    public Tensor Project(Tensor g)
    {
        var idx = _index ?? throw new InvalidOperationException("The projector has no selection yet; refresh it first.");
        return Side == ProjectionSide.Left ? LA.GatherRows(g, idx) : LA.GatherColumns(g, idx);
    }

    public Tensor ProjectBack(Tensor n)
    {
        var idx = _index ?? throw new InvalidOperationException("The projector has no selection yet; refresh it first.");
        using var noGrad = GradMode.NoGrad();
        using var zeros = Tensor.Zeros([Rows, Columns], DType.Float32, n.Backend);
        return Side == ProjectionSide.Left ? LA.ScatterRows(zeros, idx, n) : LA.ScatterColumns(zeros, idx, n);
    }

    public Tensor BasisMatrix()
    {
        var idx = (_index ?? throw new InvalidOperationException("The projector has no selection yet.")).ToArray<int>();
        var b = new float[Dim * Rank];
        for (int j = 0; j < Rank; j++) b[idx[j] * Rank + j] = 1;
        return Tensor.FromSpan<float>(b, [Dim, Rank], DType.Float32, _index.Backend);
    }

    public long StateBytes => _index == null ? 0 : 4L * Rank;

    public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        if (_index != null) yield return ("index", _index);
    }

    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend)
    {
        _index?.Dispose();
        _index = null;
        RefreshCount = refreshCount;
        if (!state.TryGetValue(prefix + "index", out var saved)) return;
        if (saved.Rank != 1 || saved.Shape[0] != Rank)
            throw new TensorLiteException($"Optimizer state '{prefix}index' has shape {ShapeMath.Format(saved.Shape)}, but the selection needs [{Rank}].");
        var values = saved.DType == DType.Int32 ? saved.ToArray<int>() : saved.ToArray<long>().Select(v => checked((int)v)).ToArray();
        if (values.Any(v => v < 0 || v >= Dim))
            throw new TensorLiteException($"Optimizer state '{prefix}index' holds an index outside [0, {Dim}).");
        _index = Tensor.FromSpan<int>(values, [Rank], DType.Int32, backend).Persist();
    }

    public void Dispose()
    {
        _index?.Dispose();
        _index = null;
    }
}
