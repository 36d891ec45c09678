namespace TensorLite.Autograd;

/// <summary>
/// Computes the gradients of an op's inputs from the gradient of its output. Returns one entry per
/// input (null where that input needs no gradient). The returned tensors are handed to the engine,
/// which owns them afterwards; the incoming gradient stays owned by the engine.
/// </summary>
public delegate Tensor?[] BackwardFunction(Tensor gradOutput);

/// <summary>
/// One recorded op of the autograd graph: its inputs and how to push a gradient back to them. The node
/// holds a reference on each input's memory, so user code may dispose intermediate tensors during the
/// forward pass without breaking Backward; the references go when the node has run (or its owning
/// <see cref="TensorScope"/> ends).
/// </summary>
public sealed class Node
{
    private bool _released;

    internal Node(string op, Tensor[] inputs, BackwardFunction backward)
    {
        Op = op;
        Inputs = inputs;
        Backward = backward;
        foreach (var x in inputs) x.Storage.AddRef();
    }

    public string Op { get; }
    public Tensor[] Inputs { get; private set; }
    internal BackwardFunction? Backward { get; private set; }

    /// <summary>Drops the saved tensors once the node has run, so their memory can go.</summary>
    internal void Release()
    {
        if (_released) return;
        _released = true;
        foreach (var x in Inputs) x.Storage.Release();
        Backward = null;
        Inputs = [];
    }
}
