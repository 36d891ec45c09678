namespace TensorLite.Optim.Projected;

/// <summary>FRUGAL's whole-matrix mode (the reference's BlockOptimizer, its default "frugal" optimizer): at every refresh
/// the moments of every projected matrix are freed, round(ρ·k) of the k projected matrices are chosen
/// (<see cref="WholeMatrixProjectorFactory.ActiveSet"/>) and get AdamW with lr·α from fresh moments; the others take the
/// state-free step lr·α·ResidualScale·f(G). Every matrix decays by lr·wd, as in the reference.</summary>
public sealed partial class ProjectedOptimizer
{
    private int[]? _matrixOrdinals;
    private (long Refresh, bool[] Active)? _activeSet;

    /// <summary>Whether the parameter at <paramref name="index"/> has AdamW moments now (FRUGAL's whole-matrix mode;
    /// for other modes: whether it has inner state).</summary>
    public bool HasInnerState(int index) => _slots[index].Inner != null;

    /// <summary>Fails at construction, as the reference does, when the matrix order cannot be followed (the mirror
    /// order with an odd number of state-full matrices).</summary>
    private void CheckWholeMatrixOrder()
    {
        if (Options.Projector is not WholeMatrixProjectorFactory factory) return;
        int count = _slots.Count(x => x.Projector is WholeMatrixProjector);
        factory.RequireEvenActiveCount(WholeMatrixProjectorFactory.ActiveCount(Options.Density ?? 1f, count), count);
    }

    private bool IsActiveMatrix(Slot s, long refresh)
    {
        if (_matrixOrdinals == null)
        {
            int next = 0;
            _matrixOrdinals = _slots.Select(x => x.Projector is WholeMatrixProjector ? next++ : -1).ToArray();
        }
        int count = _matrixOrdinals.Count(x => x >= 0);
        if (_activeSet is not { } set || set.Refresh != refresh)
        {
            var factory = (WholeMatrixProjectorFactory)Options.Projector;
            int active = WholeMatrixProjectorFactory.ActiveCount(Options.Density ?? 1f, count);
            set = (refresh, factory.ActiveSet(count, active, refresh, Options.Seed));
            _activeSet = set;
        }
        return set.Active[_matrixOrdinals[Array.IndexOf(_slots, s)]];
    }

    /// <summary>The prefix of a parameter's inner-state names: "{index}." — except in whole-matrix mode, where the
    /// moments of the j-th active matrix are "matrices.{j}.": which matrices are active changes at every refresh, and a
    /// checkpoint's names must not (the trainer checks them against a fresh optimizer's). The active set is a function of
    /// the step count, so loading maps j back to its matrix.</summary>
    private string InnerStatePrefix(int index)
    {
        if (_slots[index].Projector is not WholeMatrixProjector) return $"{index}.";
        int j = 0;
        for (int i = 0; i < index; i++)
            if (_slots[i].Projector is WholeMatrixProjector && _slots[i].Inner != null) j++;
        return $"matrices.{j}.";
    }

    /// <summary>Restores the moments of the active matrices ("matrices.{j}.…", see <see cref="InnerStatePrefix"/>) into
    /// the matrices active at the loaded step.</summary>
    private void LoadWholeMatrixMoments(IReadOnlyDictionary<string, Tensor> state)
    {
        var wholeSlots = _slots.Where(s => s.Projector is WholeMatrixProjector).ToArray();
        if (wholeSlots.Length == 0) return;
        var first = wholeSlots[0];
        var whole = (WholeMatrixProjector)first.Projector!;
        int j = 0;
        foreach (var s in wholeSlots)
        {
            if (s.ParamSteps == 0 || !IsActiveMatrix(s, (s.ParamSteps - 1) / whole.UpdateGap)) continue;
            string prefix = $"matrices.{j++}.";
            if (!state.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal))) continue;
            s.Inner = _inner.CreateState(s.Parameter.ShapeArray, s.Parameter.Backend);
            s.Inner.LoadState(state, prefix);
            TagState(s);
        }
        if (state.Keys.Any(k => k.StartsWith($"matrices.{j}.", StringComparison.Ordinal)))
            throw new TensorLiteException($"The optimizer checkpoint holds moments for more than the {j} matrices active at its step; it was written with different options.");
    }

    private void StepWholeMatrix(Slot s, WholeMatrixProjector whole, Tensor p, Tensor grad, ParamRounding rounding)
    {
        float lr = StepLearningRate, wd = Options.WeightDecay, alpha = Options.Scale;
        long t = s.ParamSteps++;
        if (whole.IsRefreshDue(t))
        {
            whole.Refresh(grad, t);
            s.Inner?.Dispose();
            s.Inner = null;
            s.InnerSteps = 0;
        }
        if (IsActiveMatrix(s, t / whole.UpdateGap) && alpha != 0f)
        {
            s.Inner ??= _inner.CreateState(p.ShapeArray, p.Backend);
            // AdamW at lr·α decays by lr·α·(wd/α) = lr·wd, the reference's decay.
            ApplyDense(s, p, grad, lr * alpha, wd / alpha, ++s.InnerSteps, rounding);
            return;
        }
        using var g = Float32(grad);
        float decay = 1f - lr * wd;
        if (Options.Residual == ResidualRule.Drop || alpha == 0f) { p.Backend.ApplyUpdate(p, g, decay, 0f, rounding); return; }
        using var f = Options.Residual == ResidualRule.SignSgd ? g.Sign() : g.Detach();
        p.Backend.ApplyUpdate(p, f, decay, lr * alpha * Options.ResidualScale, rounding);
    }

    /// <summary>The whole-matrix mode's state at its peak: AdamW for the round(ρ·k) largest projected matrices (the most
    /// any active set can hold), counters and generator state for every projected matrix, and the dense parameters'.</summary>
    private static long PredictWholeMatrixStateBytes(IEnumerable<(string Name, int[] Shape)> shapes, ProjectedOptions options)
    {
        var inner = options.ResolveInner();
        long total = 0;
        var matrices = new List<long>();
        foreach (var (name, shape) in shapes)
        {
            if (!options.Projects(name, shape)) { total += inner.PredictStateBytes(shape); continue; }
            if (shape.Length != 2) throw new TensorLiteException($"Only 2-D parameters can be projected, but the predicate selected '{name}' with shape {ShapeMath.Format(shape)}.");
            total += CounterCount * sizeof(long) + 4 * sizeof(ulong);
            matrices.Add(inner.PredictStateBytes(shape));
        }
        int active = WholeMatrixProjectorFactory.ActiveCount(options.Density ?? 1f, matrices.Count);
        return total + matrices.OrderByDescending(b => b).Take(active).Sum();
    }
}
