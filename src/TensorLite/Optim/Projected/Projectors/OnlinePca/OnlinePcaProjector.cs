using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>
/// Online Subspace Descent's projection: P [dim, r] starts as a random orthonormal basis and is updated at every step
/// by one step of <see cref="OnlinePca"/> (Adam or SGD on ‖G − P·Pᵀ·G‖², optionally re-orthonormalized by QR), never
/// by an SVD. The update uses the current gradient before it is projected, so P_t is fitted to G_0..G_t (Algorithm 1
/// of the paper fits the same sequence of P but uses each one a step later).
/// </summary>
public sealed partial class OnlinePcaProjector(ProjectionSide side, int m, int n, int rank, Generator generator, float learningRate,
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
        using var oriented = Oriented(g);
        Prepare(g.Backend).Update(oriented);
        RefreshCount++;
    }

    private OnlinePca Prepare(IBackend backend)
    {
        _pca ??= OnlinePca.RandomInit(Dim, Rank, generator, LearningRate, optimizer, reorthonormalize, backend);
        _pca.LearningRate = LearningRate;
        return _pca;
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
