namespace TensorLite;

/// <summary>
/// Owns every tensor created on this thread while it is the innermost scope, and disposes them when it
/// ends: wrap a training step in one so all its temporaries return to the memory pool at once.
/// Tensors that must outlive the scope (parameters, gradients, optimizer states) call
/// <see cref="Tensor.Persist"/>. Scopes nest and must be disposed innermost first.
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? _current;
    private readonly TensorScope? _parent;
    private readonly List<Tensor> _owned = [];
    private bool _disposed;

    private TensorScope(TensorScope? parent) => _parent = parent;

    /// <summary>Opens a scope on this thread that owns every tensor created until it is disposed.</summary>
    public static TensorScope Enter() => _current = new TensorScope(_current);

    /// <summary>The innermost open scope of this thread, or null.</summary>
    public static TensorScope? Current => _current;

    /// <summary>How many tensors this scope has seen created (disposed ones included).</summary>
    public int TrackedCount => _owned.Count;

    internal static void Register(Tensor t)
    {
        var scope = _current;
        if (scope == null) return;
        scope._owned.Add(t);
        t.OwnerScope = scope;
    }

    internal static void Unregister(Tensor t) => t.OwnerScope = null;

    /// <summary>Disposes every tensor the scope owns that was not persisted or disposed already.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        if (!ReferenceEquals(_current, this))
            throw new InvalidOperationException("TensorScopes must be disposed innermost first.");
        _disposed = true;
        _current = _parent;
        // Drop the graph's references first (a graph never run backward would otherwise pin its memory),
        // then each tensor's own.
        foreach (var t in _owned)
            if (ReferenceEquals(t.OwnerScope, this)) t.GradFn?.Release();
        foreach (var t in _owned)
            if (ReferenceEquals(t.OwnerScope, this)) t.Dispose();
        _owned.Clear();
    }
}
