using TensorLite.Distributed;
using TensorLite.Optim;
using TensorLite.Optim.Projected;

namespace TensorLite.Training;

/// <summary>
/// Sharded optimizer states (--shard-states, ZeRO stage 1): each rank updates the parameters it owns
/// (<see cref="StateShards"/>) and keeps their moments; every rank then receives each parameter from its owner. With
/// projected gradient sums (factored gradients, without --per-layer), every rank also keeps every shared projection
/// (<see cref="ProjectedOptimizer.SharesProjection(int)"/>): after a step that refreshed some, each owner in turn — rank 0,
/// 1, … — broadcasts the new projections of its parameters, in parameter order, so every rank projects the next
/// gradients with the owner's bits.
/// </summary>
public sealed partial class Trainer
{
    /// <summary>The optimizer-state shards of a data-parallel run with --shard-states (null: this rank keeps all state).</summary>
    private StateShards? _shards;

    private static StateShards? ShardsFor(TrainingOptions options, Optimizer optimizer, int processes) =>
        options.ShardStates && processes > 1 ? new StateShards(optimizer.Parameters, processes) : null;

    /// <summary>Shards the optimizer state over <paramref name="processes"/> ranks when the options ask for it. Per-layer
    /// updates of a sharded run sum dense gradients: there a parameter's step (and its projection's refresh) happens
    /// inside backward, and a non-owner would need the refreshed projection — and the projected norm clipping takes — at
    /// once.</summary>
    private void StartShards(int processes)
    {
        _shards = ShardsFor(Options, Optimizer, processes);
        if (_shards != null && Options.PerLayer) TakeDenseGradients();
    }

    /// <summary>Whether this trainer plans one rank of a data-parallel run (one process standing for rank 0): its steps
    /// then form what the ranks sum (<see cref="ProjectedOptimizer.GradientToAllReduce"/>: dense G on refresh steps) and,
    /// with sharded states, refresh the projections rank 0 would receive.</summary>
    private bool _planOfRanks;

    /// <summary>Whether this rank updates parameter <paramref name="index"/> (and keeps its optimizer state).</summary>
    private bool Owns(int index) => _shards == null || _shards.Owner(index) == World.Rank;

    /// <summary>The optimizer entries a rank loads from a checkpoint: with sharded states, those of the parameters it owns
    /// and every shared projection; null (everything) otherwise.</summary>
    private static Func<string, bool>? ShardStateFilter(TrainingOptions options, Optimizer optimizer, ICommunicator? world)
    {
        if (ShardsFor(options, optimizer, world?.WorldSize ?? 1) is not { } shards) return null;
        int rank = world!.Rank;
        var projected = options.PerLayer ? null : optimizer as ProjectedOptimizer;
        return name => shards.Owner(StateShards.ParameterOf(name)) == rank || projected?.IsSharedProjectionEntry(name) == true;
    }

    /// <summary>For the run's header: what a sharded run with projected sums sends besides them.</summary>
    private string ShardSummary => _shards != null && _factored != null ? "; each refreshed projection broadcast by its owner" : "";

    /// <summary>Updates the parameters this rank owns, then every rank receives each parameter from its owner, and the
    /// projections the step refreshed from theirs.</summary>
    private void StepShardedParameters()
    {
        var parameters = Optimizer.Parameters;
        // Before any update: which shared projections this step refreshes (the same list on every rank).
        var refreshed = _factored == null ? [] : Enumerable.Range(0, parameters.Count).Where(_factored.RefreshesSharedProjection).ToList();
        bool plan = _planOfRanks; // no other ranks: rank 0 refreshes the projections it would receive
        Optimizer.BeginStep();
        for (int i = 0; i < parameters.Count; i++)
            if (Owns(i)) Optimizer.StepParameter(i);
            else _factored?.FollowStep(i, refresh: plan && refreshed.Contains(i));
        for (int i = 0; i < parameters.Count; i++) World.Broadcast([parameters[i]], _shards!.Owner(i));
        if (!plan && _factored is { } projected && refreshed.Count > 0)
            _shards!.BroadcastFromOwners(World, refreshed, projected.ProjectionState, projected.LoadProjectionState);
    }
}
