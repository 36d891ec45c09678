namespace TensorLite.Autograd;

/// <summary>Attaches an op's backward function to its output when any input requires gradients.</summary>
internal static class Recorder
{
    [ThreadStatic] private static List<HashSet<Tensor>>? _externalInputCollectors;

    /// <summary>Records <paramref name="backward"/> on <paramref name="output"/>. The node keeps the memory of the
    /// inputs, the output and <paramref name="saved"/> (other tensors the backward reads) alive until it runs.</summary>
    public static Tensor Record(Tensor output, string op, Tensor[] inputs, BackwardFunction backward, Tensor[]? saved = null)
    {
        if (OpProfiler.Enabled) OpProfiler.MarkForward(op);
        bool needsGrad = false;
        foreach (var x in inputs)
            if (x.RequiresGrad) { needsGrad = true; break; }
        if (!needsGrad) return output;
        if (GradMode.IsEnabled)
        {
            output.MarkComputed(new Node(op, inputs, output, saved, backward));
        }
        else if (_externalInputCollectors is { Count: > 0 } collectors)
        {
            // Inside a checkpointed forward (run without recording) every tensor that requires grad
            // must have come from outside the block: remember it so the checkpoint can route its gradient.
            foreach (var x in inputs)
                if (x.RequiresGrad) collectors[^1].Add(x);
        }
        return output;
    }

    public static HashSet<Tensor> BeginCollectingExternalInputs()
    {
        var set = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        (_externalInputCollectors ??= []).Add(set);
        return set;
    }

    public static void EndCollectingExternalInputs() => _externalInputCollectors!.RemoveAt(_externalInputCollectors.Count - 1);
}
