using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    private bool _requiresGrad;
    private List<Action<Tensor>>? _gradHooks;

    /// <summary>Whether gradients flow to this tensor. Settable on leaves (parameters) only.</summary>
    public bool RequiresGrad
    {
        get => _requiresGrad;
        set
        {
            if (!value && GradFn != null)
                throw new TensorLiteException($"Cannot clear requires_grad on {Describe()}, which was computed by an op; use Detach().");
            if (value && !DType.IsFloatingPoint())
                throw new DTypeMismatchException($"Only floating-point tensors can require gradients, not {Describe()}.");
            _requiresGrad = value;
        }
    }

    /// <summary>The accumulated gradient of a leaf after Backward (summed over calls until cleared).</summary>
    public Tensor? Grad { get; set; }

    /// <summary>The gradient of a leaf kept as its factors (see <see cref="FactoredGradient"/>) instead of
    /// <see cref="Grad"/>; at most one of the two is set. Only leaves with <see cref="CaptureFactoredGradient"/> get one.</summary>
    public FactoredGradient? FactoredGrad { get; set; }

    /// <summary>Whether <see cref="Nn.Linear"/> hands this weight's gradient to the engine as its factors (input and output
    /// gradient) instead of computing the m×n product. The engine falls back to the dense gradient when the weight also
    /// receives a dense one (e.g. it is tied to an embedding) or when no backward pass can keep factors.</summary>
    public bool CaptureFactoredGradient
    {
        get => _captureFactored;
        set
        {
            if (value && (!IsLeaf || Rank != 2))
                throw new TensorLiteException($"Only 2-D leaf weights can capture factored gradients, not {Describe()}.");
            _captureFactored = value;
        }
    }

    private bool _captureFactored;

    /// <summary>Whether this leaf has any gradient: dense or factored.</summary>
    public bool HasGradient => Grad != null || FactoredGrad != null;

    /// <summary>The op that produced this tensor, or null for leaves.</summary>
    public Node? GradFn { get; internal set; }

    /// <summary>Whether this tensor was created by the user (a parameter or input) rather than by a recorded op.</summary>
    public bool IsLeaf => GradFn == null;

    internal void MarkComputed(Node node)
    {
        _requiresGrad = true;
        GradFn = node;
    }

    /// <summary>
    /// Registers a callback that runs during Backward as soon as this leaf's gradient for that pass is
    /// final (accumulated into <see cref="Grad"/>). The hook may consume and clear the gradient, which
    /// is how per-layer optimizer updates free each gradient at once.
    /// </summary>
    public void RegisterGradHook(Action<Tensor> hook)
    {
        if (!IsLeaf) throw new TensorLiteException($"Gradient hooks go on leaf tensors (parameters), not on {Describe()}.");
        (_gradHooks ??= []).Add(hook);
    }

    /// <summary>Removes every hook added with <see cref="RegisterGradHook"/>.</summary>
    public void ClearGradHooks() => _gradHooks = null;

    internal void RunGradHooks()
    {
        if (_gradHooks == null) return;
        foreach (var hook in _gradHooks) hook(this);
    }

    /// <summary>Sets requires_grad (on a leaf) and returns the tensor, for fluent parameter creation.</summary>
    public Tensor RequireGrad(bool value = true)
    {
        RequiresGrad = value;
        return this;
    }

    /// <summary>A view of the same memory that is cut from the autograd graph.</summary>
    public Tensor Detach() => Alias();

    /// <summary>Frees this tensor's gradient, dense and factored; the next backward starts from zero.</summary>
    public void ZeroGrad()
    {
        Grad?.Dispose();
        Grad = null;
        FactoredGrad?.Dispose();
        FactoredGrad = null;
    }

    /// <summary>Back-propagates from this scalar (or with an explicit output gradient).</summary>
    public void Backward(Tensor? gradOutput = null) => Engine.Backward(this, gradOutput);
}
