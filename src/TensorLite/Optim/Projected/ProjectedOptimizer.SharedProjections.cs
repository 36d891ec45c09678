using System.Globalization;
using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>
/// Projections in a run whose optimizer state is sharded (--shard-states). Between refreshes every rank projects its own
/// gradient of every matrix before the sum, so every rank needs the projection of every matrix whose sum is projected,
/// while only the parameter's owner keeps its moments and takes its step. The owner alone refreshes the projection (from
/// the summed dense G of the refresh step) and then sends it to the others, who install it bit for bit: the trainer
/// moves the entries (<see cref="ProjectionState"/>, <see cref="LoadProjectionState"/>); this class says which
/// projections are shared and keeps a non-owner's step count, which decides when the next refresh is due. A projection
/// that is refreshed at every step (OSD, or an update gap of 1) is never used between refreshes, so it is not shared:
/// those parameters sum dense G at every step, sharded or not.
/// </summary>
public sealed partial class ProjectedOptimizer
{
    /// <summary>Whether every rank of a sharded run keeps the projection of parameter <paramref name="index"/>: a matrix
    /// whose gradient is summed projected between refreshes (it takes factored gradients) under a projection that lasts
    /// more than one step.</summary>
    public bool SharesProjection(int index) => SharesProjection(_slots[index]);

    private bool SharesProjection(Slot s) => ProjectsFactored(s) && LastsMoreThanOneStep(Options);

    private static bool LastsMoreThanOneStep(ProjectedOptions o) => o.UpdateGap > 1 && !o.Projector.RefreshesEveryStep;

    /// <summary>Whether the coming step refreshes the shared projection of parameter <paramref name="index"/>. Asked on
    /// every rank before the step, it has the same answer on all of them: their step counts and projections agree.</summary>
    public bool RefreshesSharedProjection(int index)
    {
        var s = _slots[index];
        return SharesProjection(s) && s.Parameter.HasGradient && RefreshPending(s);
    }

    /// <summary>
    /// On a rank that does not own parameter <paramref name="index"/>, in place of its step: counts the step its owner
    /// takes, so the rank knows when the shared projection is next refreshed. With <paramref name="refresh"/>, it also
    /// refreshes the projection from the parameter's dense gradient as the owner's step does, without the update or the
    /// moments — what the memory plan of a sharded run (one process standing for rank 0) does instead of receiving the
    /// owner's projection, which has the same shapes. Nothing happens for a projection that is not shared.
    /// </summary>
    public void FollowStep(int index, bool refresh = false)
    {
        var s = _slots[index];
        if (!SharesProjection(s) || !s.Parameter.HasGradient) return;
        if (refresh)
        {
            var grad = s.Parameter.Grad ?? throw new InvalidOperationException($"'{s.Name}' has no dense gradient to refresh its projection from.");
            long t = s.ParamSteps;
            InStepScope(() =>
            {
                using var g = Float32(grad);
                RefreshProjector(s, () => s.Projector!.Refresh(g, t));
            });
            TagState(s);
        }
        s.ParamSteps++;
        s.ProjectedElements = ShapeMath.Numel(ProjectedShape(s.M, s.N, s.Rank, s.Projector!.Side, s.Projector.IsIdentity));
    }

    /// <summary>On a rank that does not own parameter <paramref name="index"/>, in place of its per-layer step from a
    /// factored gradient folded into R: counts the step (<see cref="FollowStep"/>) and returns the norm the owner's step
    /// reports (<see cref="FactoredGradNorm"/>), computed the same way from the same summed R, so every rank clips alike.</summary>
    public double FollowFactoredStep(int index)
    {
        var s = _slots[index];
        var f = s.Parameter.FactoredGrad ?? throw new InvalidOperationException($"'{s.Name}' has no factored gradient.");
        double norm;
        using (GradMode.NoGrad())
        using (var r = ProjectedGradient(s.Projector!, f))
            norm = NormBeforeClipping(r, f.Scale);
        FollowStep(index);
        return norm;
    }

    /// <summary>What the owner of parameter <paramref name="index"/> sends after refreshing its shared projection: its
    /// counters, random stream and projector state, named as in a checkpoint ("{index}.counters", "{index}.rng",
    /// "{index}.proj.*"); the tensors stay the optimizer's.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> ProjectionState(int index) =>
        SharesProjection(_slots[index]) ? ProjectionEntries(index) : throw new InvalidOperationException($"The projection of '{_slots[index].Name}' is not shared.");

    /// <summary>Installs projections an owner sent (<see cref="ProjectionState"/> entries of one or more parameters),
    /// values copied bit for bit; the inner moments stay as they are (a non-owner has none).</summary>
    public void LoadProjectionState(IReadOnlyList<(string Name, Tensor Tensor)> entries)
    {
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var indices = new SortedSet<int>();
        foreach (var (name, t) in entries)
        {
            if (!IsSharedProjectionEntry(name)) throw new InvalidOperationException($"'{name}' is not an entry of a shared projection.");
            state[name] = t;
            indices.Add(ParameterIndexOf(name)!.Value);
        }
        using var noGrad = GradMode.NoGrad();
        foreach (int i in indices) LoadProjection(i, state);
    }

    /// <summary>Whether a checkpoint entry belongs to a shared projection: a rank of a sharded run loads these for every
    /// parameter, and the moments only for its own.</summary>
    public bool IsSharedProjectionEntry(string name) =>
        ParameterIndexOf(name) is int i && i < _slots.Length && SharesProjection(_slots[i]) && IsProjectionEntry(name[(name.IndexOf('.') + 1)..]);

    private static int? ParameterIndexOf(string name)
    {
        int dot = name.IndexOf('.');
        return dot > 0 && int.TryParse(name.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out int i) ? i : null;
    }

    /// <summary>
    /// The closed form of <see cref="Optimizer.StateBytes"/> on one rank of a sharded run once every parameter has taken
    /// a step: the whole state (<see cref="PredictStateBytes"/>) of each parameter it owns (<paramref name="owns"/>, by
    /// parameter index), and for each other parameter whose projection is shared, that projection — 24 bytes of counters,
    /// 32 of random-generator state and the projector's state — without moments.
    /// </summary>
    public static long PredictShardStateBytes(IReadOnlyList<(string Name, int[] Shape)> shapes, ProjectedOptions options, Func<int, bool> owns)
    {
        options.Validate();
        long total = 0;
        for (int i = 0; i < shapes.Count; i++)
        {
            var (name, shape) = shapes[i];
            if (owns(i))
            {
                total += PredictStateBytes([shapes[i]], options);
                continue;
            }
            if (!options.Projects(name, shape) || shape.Length != 2 || !LastsMoreThanOneStep(options) || options.Residual != ResidualRule.Drop) continue;
            int m = shape[0], n = shape[1], rank = options.RankFor(m, n);
            if (rank == 0 || options.IsIdentityFor(m, n)) continue;
            total += CounterCount * sizeof(long) + 4 * sizeof(ulong) + options.Projector.PredictStateBytes(options.SideFor(m, n), m, n, rank, options.BasisDType);
        }
        return total;
    }
}
