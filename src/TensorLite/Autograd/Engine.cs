namespace TensorLite.Autograd;

/// <summary>
/// Reverse-mode differentiation over the recorded graph. Tensors are processed in reverse topological
/// order, so each gradient is complete when it is used, and a leaf's gradient is final (and its hooks
/// run) as soon as every op that consumed it has been differentiated. Intermediate gradients and the
/// saved tensors of each node are released as soon as they are no longer needed.
/// </summary>
public static class Engine
{
    /// <summary>Accumulates d(root)/d(leaf) into every reachable leaf's <see cref="Tensor.Grad"/>.</summary>
    public static void Backward(Tensor root, Tensor? gradOutput = null)
    {
        root.ThrowIfDisposed();
        if (!root.RequiresGrad)
            throw new TensorLiteException($"Backward() on {root.Describe()}, which does not require gradients: no parameter it depends on has requires_grad.");
        Tensor seed = SeedGradient(root, gradOutput);
        Run(root, seed, targets: null);
    }

    /// <summary>
    /// The gradients of root with respect to <paramref name="inputs"/> (null where unreachable), without
    /// touching any <see cref="Tensor.Grad"/> or running hooks. The graph is consumed.
    /// </summary>
    public static Tensor?[] Grad(Tensor root, Tensor gradOutput, IReadOnlyList<Tensor> inputs)
    {
        var targets = new Dictionary<Tensor, Tensor?>(ReferenceEqualityComparer.Instance);
        foreach (var x in inputs) targets[x] = null;
        if (root.RequiresGrad) Run(root, SeedGradient(root, gradOutput), targets);
        return inputs.Select(x => targets[x]).ToArray();
    }

    private static Tensor SeedGradient(Tensor root, Tensor? gradOutput)
    {
        if (gradOutput == null)
        {
            if (root.Numel != 1)
                throw new ShapeMismatchException($"Backward() without an output gradient needs a scalar, got shape {ShapeMath.Format(root.Shape)}.");
            return Tensor.OnesLike(root);
        }
        if (!ShapeMath.SameShape(gradOutput.Shape, root.Shape))
            throw new ShapeMismatchException($"Output gradient shape {ShapeMath.Format(gradOutput.Shape)} does not match output shape {ShapeMath.Format(root.Shape)}.");
        return gradOutput.Alias();
    }

    private static void Run(Tensor root, Tensor seed, Dictionary<Tensor, Tensor?>? targets)
    {
        var order = TopologicalOrder(root, targets);
        var grads = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance) { [root] = seed };
        var run = new RunContext(targets);
        (_runs ??= []).Add(run);
        using var noGrad = GradMode.NoGrad();
        try
        {
            for (int i = order.Count - 1; i >= 0; i--)
            {
                Tensor t = order[i];
                bool hasDense = grads.Remove(t, out var g);
                run.Factors.Remove(t, out var factors);
                if (!hasDense && factors == null) continue;
                if (targets != null && targets.ContainsKey(t))
                {
                    // Factors only reach a target when an outer run takes them (see DeliverFactors); a dense part is
                    // handed back as usual.
                    if (hasDense) targets[t] = g!.Persist();
                    factors?.Dispose();
                    continue;
                }
                if (t.GradFn == null)
                {
                    if (targets == null) AccumulateIntoLeaf(t, g, factors);
                    else { g?.Dispose(); factors?.Dispose(); }
                    continue;
                }
                PropagateThroughNode(t, g!, grads);
            }
        }
        finally
        {
            _runs.RemoveAt(_runs.Count - 1);
            foreach (var leftover in grads.Values) leftover.Dispose();
            foreach (var leftover in run.Factors.Values) leftover.Dispose();
        }
    }

    /// <summary>One backward pass in progress: its targets (null for Backward) and the factored gradients delivered to
    /// its leaves, consumed when the leaf's turn comes.</summary>
    private sealed class RunContext(Dictionary<Tensor, Tensor?>? targets)
    {
        public Dictionary<Tensor, Tensor?>? Targets { get; } = targets;
        public Dictionary<Tensor, FactoredGradient> Factors { get; } = new(ReferenceEqualityComparer.Instance);
    }

    [ThreadStatic] private static List<RunContext>? _runs;

    /// <summary>
    /// Offers the factors of <paramref name="leaf"/>'s gradient (X [b, n] and dY [b, m], G = dYᵀ·X) to the backward
    /// passes in progress, innermost first. A pass that computes gradients for its targets (a checkpointed block's
    /// recomputation) passes a target's factors on to the pass that will accumulate them; the first plain Backward takes
    /// them (aliases; the caller keeps its tensors). Returns false when no pass can keep factors for this leaf (the
    /// caller then computes the dense gradient); true also when no pass needs the leaf's gradient at all.
    /// </summary>
    internal static bool DeliverFactors(Tensor leaf, Tensor input, Tensor outputGrad)
    {
        if (_runs == null) return false;
        for (int i = _runs.Count - 1; i >= 0; i--)
        {
            var run = _runs[i];
            if (run.Targets != null)
            {
                if (run.Targets.ContainsKey(leaf)) continue; // the enclosing pass accumulates it
                return true;                                  // this pass does not want it
            }
            if (!run.Factors.TryGetValue(leaf, out var f))
                run.Factors[leaf] = f = new FactoredGradient(leaf.Shape[0], leaf.Shape[1]);
            f.Add(input, outputGrad);
            return true;
        }
        return false;
    }

    private static void PropagateThroughNode(Tensor t, Tensor g, Dictionary<Tensor, Tensor> grads)
    {
        Node node = t.GradFn!;
        var backward = node.Backward ?? throw new TensorLiteException(
            $"The graph through '{node.Op}' was already differentiated and freed; run the forward pass again before calling Backward().");
        long started = OpProfiler.Enabled ? OpProfiler.Now() : 0;
        Tensor?[] inputGrads = backward(g);
        if (OpProfiler.Enabled) OpProfiler.AddBackward(node.Op, started);
        var inputs = node.Inputs;
        if (inputGrads.Length != inputs.Length)
            throw new InvalidOperationException($"Backward of '{node.Op}' returned {inputGrads.Length} gradients for {inputs.Length} inputs.");
        node.Release();
        for (int k = 0; k < inputs.Length; k++)
        {
            Tensor? gi = inputGrads[k];
            if (gi == null) continue;
            if (!inputs[k].RequiresGrad) { DisposeUnlessShared(gi, g, inputGrads, k); continue; }
            if (!ShapeMath.SameShape(gi.Shape, inputs[k].Shape))
                throw new InvalidOperationException($"Backward of '{node.Op}' produced gradient {ShapeMath.Format(gi.Shape)} for input {ShapeMath.Format(inputs[k].Shape)}.");
            // The dtype policy: a tensor's gradient has the tensor's dtype (bf16 activations get bf16 gradients, each
            // parameter a gradient in its own dtype), so in-place accumulation never mixes dtypes.
            if (gi.DType != inputs[k].DType)
                throw new InvalidOperationException($"Backward of '{node.Op}' produced a {gi.DType.Name()} gradient for a {inputs[k].DType.Name()} input.");
            // Each gradient entry must be a tensor object of its own, because entries are disposed independently.
            if (ReferenceEquals(gi, g) || IsRepeated(gi, inputGrads, k)) gi = gi.Alias();
            if (grads.TryGetValue(inputs[k], out var existing)) grads[inputs[k]] = Sum(existing, gi);
            else grads[inputs[k]] = gi;
        }
        g.Dispose(); // aliases taken above keep its memory alive where it was passed on
    }

    private static bool IsRepeated(Tensor gi, Tensor?[] all, int index)
    {
        for (int j = 0; j < index; j++) if (ReferenceEquals(all[j], gi)) return true;
        return false;
    }

    private static void DisposeUnlessShared(Tensor gi, Tensor g, Tensor?[] all, int index)
    {
        if (ReferenceEquals(gi, g)) return;
        for (int j = 0; j < all.Length; j++) if (j != index && ReferenceEquals(all[j], gi)) return;
        gi.Dispose();
    }

    /// <summary>existing + incoming, in place when the existing buffer is exclusively ours.</summary>
    private static Tensor Sum(Tensor existing, Tensor incoming)
    {
        if (existing.Storage.RefCount == 1 && existing.IsContiguous)
        {
            existing.Backend.Binary(BinaryOp.Add, existing, incoming, existing);
            incoming.Dispose();
            return existing;
        }
        var sum = existing + incoming;
        existing.Dispose();
        incoming.Dispose();
        return sum;
    }

    /// <summary>Adds a pass's gradient of a leaf, dense (<paramref name="g"/>), factored or both, to what the leaf holds,
    /// then runs its hooks. Factors stay factors only while the leaf receives nothing dense; otherwise they are formed
    /// into the dense gradient (the fallback for a weight that is also used outside a factored matmul).</summary>
    private static void AccumulateIntoLeaf(Tensor leaf, Tensor? g, FactoredGradient? factors)
    {
        if (factors != null && (g != null || leaf.Grad != null))
        {
            using (factors)
            {
                var dense = factors.ToDense(leaf.DType);
                g = g == null ? dense : Sum(g, dense);
            }
            factors = null;
        }
        if (g != null && leaf.FactoredGrad != null)
        {
            using (var held = leaf.FactoredGrad) g = Sum(g, held.ToDense(leaf.DType));
            leaf.FactoredGrad = null;
        }
        if (g == null)
        {
            if (leaf.FactoredGrad == null) leaf.FactoredGrad = factors;
            else leaf.FactoredGrad.Absorb(factors!);
            leaf.RunGradHooks();
            return;
        }
        AccumulateDense(leaf, g);
        leaf.RunGradHooks();
    }

    private static void AccumulateDense(Tensor leaf, Tensor g)
    {
        if (leaf.Grad == null)
        {
            leaf.Grad = g.IsContiguous ? g : g.Contiguous();
            if (!ReferenceEquals(leaf.Grad, g)) g.Dispose();
        }
        else
        {
            leaf.Grad = Sum(leaf.Grad, g);
        }
        leaf.Grad.Persist().Tag(Memory.MemoryCategory.Gradients);
    }

    /// <summary>Tensors reachable from root through recorded ops, inputs before their consumers.
    /// Iterative, because LLaMA graphs are thousands of ops deep. Targets are not expanded.</summary>
    private static List<Tensor> TopologicalOrder(Tensor root, Dictionary<Tensor, Tensor?>? targets)
    {
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance) { root };
        var stack = new Stack<(Tensor Tensor, int NextInput)>();
        stack.Push((root, 0));
        while (stack.Count > 0)
        {
            var (t, next) = stack.Pop();
            var inputs = t.GradFn != null && (targets == null || !targets.ContainsKey(t)) ? t.GradFn.Inputs : [];
            while (next < inputs.Length && (!inputs[next].RequiresGrad || visited.Contains(inputs[next]))) next++;
            if (next < inputs.Length)
            {
                stack.Push((t, next + 1));
                visited.Add(inputs[next]);
                stack.Push((inputs[next], 0));
            }
            else
            {
                order.Add(t);
            }
        }
        return order;
    }
}
