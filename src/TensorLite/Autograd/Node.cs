namespace TensorLite.Autograd;

/// <summary>
/// Computes the gradients of an op's inputs from the gradient of its output. Returns one entry per
/// input (null where that input needs no gradient). The returned tensors are handed to the engine,
/// which owns them afterwards; the incoming gradient stays owned by the engine.
/// </summary>
public delegate Tensor?[] BackwardFunction(Tensor gradOutput);

/// <summary>
/// One recorded op of the autograd graph: its inputs and how to push a gradient back to them. The node
/// holds a reference on the memory of its inputs, its output and any extra tensors saved for backward,
/// so user code may dispose intermediate tensors during the forward pass without breaking Backward;
/// the references go when the node has run (or its owning <see cref="TensorScope"/> ends).
/// </summary>
public sealed class Node
{
    private bool _released;
    private Storage[] _retained;

    internal Node(string op, Tensor[] inputs, Tensor output, Tensor[]? saved, BackwardFunction backward)
    {
        Op = op;
        Inputs = inputs;
        Backward = backward;
        _retained = [.. inputs.Select(x => x.Storage), output.Storage, .. (saved ?? []).Select(x => x.Storage)];
        foreach (var s in _retained) s.AddRef();
    }

    /// <summary>The op's name (as in error messages and the profiler).</summary>
    public string Op { get; }
    /// <summary>The tensors the op read; the gradient flows back to those that require it.</summary>
    public Tensor[] Inputs { get; private set; }
    internal BackwardFunction? Backward { get; private set; }

    /// <summary>Drops the saved tensors once the node has run, so their memory can go.</summary>
    internal void Release()
    {
        if (_released) return;
        _released = true;
        foreach (var s in _retained) s.Release();
        _retained = [];
        Backward = null;
        Inputs = [];
    }
}
