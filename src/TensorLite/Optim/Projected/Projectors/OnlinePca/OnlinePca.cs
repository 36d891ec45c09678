using TensorLite.Autograd;
using TensorLite.LinearAlgebra;

namespace TensorLite.Optim.Projected;

/// <summary>
/// The projection of Online Subspace Descent (Liang et al. 2024): P [m, r] tracks the top-r principal subspace of a
/// stream of matrices G [m, n] by one optimizer step per <see cref="Update"/> on ‖G − P·Pᵀ·G‖²_F (see
/// <see cref="Linalg.OnlinePcaGradient"/>), optionally re-orthonormalized by QR after each step. It owns (and
/// persists) P and its optimizer state; dispose it to free them.
/// </summary>
public sealed class OnlinePca : IDisposable
{
    private readonly AdamWInner _adam;
    private AdamMoments? _moments;

    /// <summary>An online PCA that starts from <paramref name="initialProjection"/>.</summary>
    /// <param name="initialProjection">The starting P [m, r] with r ≤ m (copied).</param>
    /// <param name="learningRate">The step size of P's optimizer (non-negative); <see cref="LearningRate"/> may change it
    /// later.</param>
    /// <param name="optimizer">What steps P: AdamW (moments of P's shape, allocated now) or SGD (no state).</param>
    /// <param name="reorthonormalize">Whether P is re-orthonormalized by QR after each update.</param>
    /// <param name="beta1">AdamW's β1 for P, in [0, 1).</param>
    /// <param name="beta2">AdamW's β2 for P, in [0, 1).</param>
    /// <param name="eps">AdamW's ε for P (positive).</param>
    /// <param name="weightDecay">AdamW's decoupled weight decay on P (the OSD reference uses torch's AdamW default,
    /// 0.01); SGD ignores it.</param>
    public OnlinePca(Tensor initialProjection, float learningRate, OnlinePcaOptimizer optimizer = OnlinePcaOptimizer.Adam,
        bool reorthonormalize = false, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0f)
    {
        Linalg.RequireMatrix(initialProjection, "online_pca", "initialProjection");
        if (initialProjection.Shape[1] > initialProjection.Shape[0])
            throw new ShapeMismatchException($"online_pca: a projection [m, r] needs r ≤ m, got shape {ShapeMath.Format(initialProjection.Shape)}.");
        if (!(learningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(learningRate), "online_pca: the learning rate must be non-negative.");
        if (beta1 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), "online_pca: beta1 must be in [0, 1).");
        if (beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta2), "online_pca: beta2 must be in [0, 1).");
        if (!(eps > 0)) throw new ArgumentOutOfRangeException(nameof(eps), "online_pca: eps must be positive.");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), "online_pca: the weight decay must be non-negative.");
        WeightDecay = weightDecay;
        _adam = new AdamWInner(beta1, beta2, eps);
        using (GradMode.NoGrad()) Projection = initialProjection.Clone().Persist();
        // AdamW's moments exist from the start (zero), so the state a checkpoint holds does not depend on whether P
        // has taken its first step yet. Untagged: the projected optimizer counts them as projector state.
        if (optimizer == OnlinePcaOptimizer.Adam) _moments = _adam.CreateMoments(Projection.ShapeArray, Projection.Backend, category: null);
        LearningRate = learningRate;
        Optimizer = optimizer;
        Reorthonormalize = reorthonormalize;
    }

    /// <summary>An online PCA starting from a random orthonormal [m, r] projection (QR of a Gaussian matrix).</summary>
    public static OnlinePca RandomInit(int m, int r, Generator generator, float learningRate,
        OnlinePcaOptimizer optimizer = OnlinePcaOptimizer.Adam, bool reorthonormalize = false, IBackend? backend = null)
    {
        if (r < 1 || r > m) throw new ArgumentOutOfRangeException(nameof(r), $"online_pca: rank {r} must be between 1 and m = {m}.");
        using var noGrad = GradMode.NoGrad();
        using var gauss = Tensor.RandN([m, r], generator, 1f, backend);
        using var q = Linalg.Orthonormalize(gauss);
        return new OnlinePca(q, learningRate, optimizer, reorthonormalize);
    }

    /// <summary>The current projection P [m, r] (owned by this object; updated in place).</summary>
    public Tensor Projection { get; }

    /// <summary>The step size of P's optimizer for the next <see cref="Update"/> (non-negative; the owner may change it
    /// every step).</summary>
    public float LearningRate { get; set; }
    /// <summary>AdamW's decoupled weight decay on P (SGD ignores it).</summary>
    public float WeightDecay { get; }
    /// <summary>The optimizer that steps P: AdamW or plain SGD.</summary>
    public OnlinePcaOptimizer Optimizer { get; }
    /// <summary>Whether P is re-orthonormalized by QR after each update.</summary>
    public bool Reorthonormalize { get; }
    /// <summary>AdamW's β1 for P.</summary>
    public float Beta1 => _adam.Beta1;
    /// <summary>AdamW's β2 for P.</summary>
    public float Beta2 => _adam.Beta2;
    /// <summary>AdamW's ε for P.</summary>
    public float Eps => _adam.Eps;
    /// <summary>The number of updates P has taken (AdamW's bias corrections use it; checkpointed).</summary>
    public long StepCount { get; private set; }

    /// <summary>One optimizer step of P on ‖G − P·Pᵀ·G‖²_F for g [m, n].</summary>
    public void Update(Tensor g)
    {
        using var noGrad = GradMode.NoGrad();
        using var grad = Linalg.OnlinePcaGradient(Projection, g);
        Step(grad);
    }

    /// <summary>One optimizer step of P from a gradient of the reconstruction loss computed elsewhere (from a gradient
    /// kept as factors).</summary>
    public void Step(Tensor grad)
    {
        using var noGrad = GradMode.NoGrad();
        StepCount++;
        var backend = Projection.Backend;
        if (Optimizer == OnlinePcaOptimizer.Adam)
        {
            _moments!.Apply(Projection, grad, LearningRate, WeightDecay, StepCount, ParamRounding.Nearest);
        }
        else
        {
            using var step = grad * LearningRate;
            using var next = Projection - step;
            backend.Copy(next, Projection);
        }
        if (Reorthonormalize)
        {
            using var q = Linalg.Orthonormalize(Projection);
            backend.Copy(q, Projection);
        }
    }

    /// <summary>Adam's first moment of P (null with SGD); owned by this object. For checkpoints.</summary>
    public Tensor? FirstMoment => _moments?.First;

    /// <summary>Adam's second moment of P (null with SGD); owned by this object.</summary>
    public Tensor? SecondMoment => _moments?.Second;

    /// <summary>Restores a saved state (values are copied in): P, the Adam moments (null for none) and the step count,
    /// so that the following updates are bitwise identical to an uninterrupted run.</summary>
    public void LoadState(Tensor projection, Tensor? firstMoment, Tensor? secondMoment, long stepCount)
    {
        if (!ShapeMath.SameShape(projection.Shape, Projection.Shape))
            throw new ShapeMismatchException($"online_pca: a saved projection {ShapeMath.Format(projection.Shape)} does not match {ShapeMath.Format(Projection.Shape)}.");
        if ((firstMoment == null) != (secondMoment == null))
            throw new ArgumentException("online_pca: both Adam moments or neither must be given.", nameof(firstMoment));
        if (stepCount < 0) throw new ArgumentOutOfRangeException(nameof(stepCount), "online_pca: the step count must be non-negative.");
        using var noGrad = GradMode.NoGrad();
        var backend = Projection.Backend;
        backend.Copy(projection, Projection);
        _moments?.Dispose();
        _moments = null;
        if (firstMoment != null)
        {
            if (!ShapeMath.SameShape(firstMoment.Shape, Projection.Shape) || !ShapeMath.SameShape(secondMoment!.Shape, Projection.Shape))
                throw new ShapeMismatchException($"online_pca: saved Adam moments must have the projection's shape {ShapeMath.Format(Projection.Shape)}.");
            _moments = _adam.CreateMoments(Projection.ShapeArray, backend, category: null);
            backend.Copy(firstMoment, _moments.First);
            backend.Copy(secondMoment, _moments.Second);
        }
        else if (Optimizer == OnlinePcaOptimizer.Adam)
            _moments = _adam.CreateMoments(Projection.ShapeArray, backend, category: null);
        StepCount = stepCount;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Projection.Dispose();
        _moments?.Dispose();
    }
}
