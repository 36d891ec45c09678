using TensorLite.Autograd;
using TensorLite.LinearAlgebra;

namespace TensorLite.Optim.Projected;

/// <summary>
/// Online Subspace Descent's projection, as the reference (kyleliang919/Online-Subspace-Descent, galore_projector.py,
/// proj_type "continuous") does it: P [dim, r] starts as the top-r singular vectors of the first gradient (the same basis
/// GaLore would compute), and at every later step takes one step of <see cref="OnlinePca"/> on ‖Ĝ − P·Pᵀ·Ĝ‖²_F with
/// Ĝ = G/‖G‖_F, the optimizer's learning rate being <see cref="LearningRate"/> (1/T by default) times the main
/// schedule's lr_t/lr_peak. The timing is the reference's: at step t the refresh computes the PCA loss's gradient at
/// P_{t−1} on Ĝ_t (its <c>loss.backward()</c> in project), G_t is projected and its update projected back with P_{t−1},
/// and only then P takes its step to P_t (<see cref="EndStep"/>; the reference's <c>ortho_matrix_optim.step()</c> at the
/// end of project_back). P_t is first used at step t + 1. The pending gradient (one [dim, r] tensor) lives from the
/// refresh to the end of the step, never across a checkpoint.
/// </summary>
public sealed partial class OnlinePcaProjector(ProjectionSide side, int m, int n, int rank, float learningRate,
    OnlinePcaOptimizer optimizer = OnlinePcaOptimizer.Adam, bool reorthonormalize = false, float weightDecay = 0f,
    float beta1 = 0.9f, float beta2 = 0.999f)
    : DenseBasisProjector(side, m, n, rank, 1), IProjector, IFollowsLearningRateSchedule
{
    private OnlinePca? _pca;
    private Tensor? _pendingGradient;

    /// <summary>The online PCA that holds P; null before the first refresh.</summary>
    public OnlinePca? Pca => _pca;
    /// <summary>The online PCA's peak learning rate (the reference: 1/T).</summary>
    public float LearningRate { get; set; } = learningRate;
    /// <inheritdoc/>
    public float ScheduleRatio { get; set; } = 1f;
    /// <inheritdoc/>
    public override Tensor? Basis => _pca?.Projection;
    /// <inheritdoc/>
    public override bool IsRefreshDue(long step) => true;

    /// <inheritdoc/>
    public override void Refresh(Tensor g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        if (_pca == null)
        {
            using var initial = SvdProjector.TopSingularBasis(g, Rank, Side);
            _pca = new OnlinePca(initial, LearningRate, optimizer, reorthonormalize, beta1, beta2, weightDecay: weightDecay);
        }
        else
        {
            // A gradient still pending belongs to a step whose update never ran; the reference would not have stepped P.
            DropPendingGradient();
            _pca.LearningRate = LearningRate * ScheduleRatio;
            using var oriented = Oriented(g);
            using var squares = oriented.Square();
            using var sum = squares.Sum();
            float norm = MathF.Sqrt(sum.Item());
            using var normalized = norm > 0 ? oriented * (1f / norm) : oriented.Detach();
            _pendingGradient = Linalg.OnlinePcaGradient(_pca.Projection, normalized).Persist();
        }
        RefreshCount++;
    }

    /// <summary>Whether a PCA step computed at this step's refresh waits for the end of the step.</summary>
    public bool HasPendingStep => _pendingGradient != null;

    /// <summary>P's step from the gradient computed at the refresh, after the update was projected back with the old P.</summary>
    public void EndStep()
    {
        if (_pendingGradient == null) return;
        _pca!.Step(_pendingGradient);
        DropPendingGradient();
    }

    private void DropPendingGradient()
    {
        _pendingGradient?.Dispose();
        _pendingGradient = null;
    }

    /// <inheritdoc/>
    public override long StateBytes =>
        _pca == null ? 0 : 4L * _pca.Projection.Numel * (optimizer == OnlinePcaOptimizer.Adam ? 3 : 1);

    /// <inheritdoc/>
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

    /// <inheritdoc/>
    public override void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend)
    {
        DropPendingGradient();
        _pca?.Dispose();
        _pca = null;
        RefreshCount = refreshCount;
        if (!state.TryGetValue(prefix + "basis", out var basis)) return;
        if (basis.Rank != 2 || basis.Shape[0] != Dim || basis.Shape[1] != Rank)
            throw new TensorLiteException($"Optimizer state '{prefix}basis' has shape {ShapeMath.Format(basis.Shape)}, but the projection needs [{Dim}, {Rank}].");
        using var noGrad = GradMode.NoGrad();
        using var b32 = ProjectedOptimizer.ToBackend(basis, backend);
        _pca = new OnlinePca(b32, LearningRate, optimizer, reorthonormalize, beta1, beta2, weightDecay: weightDecay);
        using var m1 = state.TryGetValue(prefix + "pca_exp_avg", out var a) ? ProjectedOptimizer.ToBackend(a, backend) : null;
        using var m2 = state.TryGetValue(prefix + "pca_exp_avg_sq", out var b) ? ProjectedOptimizer.ToBackend(b, backend) : null;
        // The first refresh only initialized P; the PCA's own step count is one less than the refreshes.
        _pca.LoadState(b32, m1, m2, Math.Max(0, refreshCount - 1));
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        DropPendingGradient();
        _pca?.Dispose();
        _pca = null;
    }
}
