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

    /// <summary>Shards the optimizer state over <paramref name="processes"/> ranks when the options ask for it.</summary>
    private void StartShards(int processes) => _shards = ShardsFor(Options, Optimizer, processes);

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
        var projected = optimizer as ProjectedOptimizer;
        return name => shards.Owner(StateShards.ParameterOf(name)) == rank || projected?.IsSharedProjectionEntry(name) == true;
    }

    /// <summary>For the run's header: what a sharded run with projected sums sends besides them.</summary>
    private string ShardSummary => _shards != null && _factored != null ? "; each refreshed projection broadcast by its owner" : "";

    /// <summary>The shared projections this step refreshes, in the order their parameters are stepped (the same list on
    /// every rank); each is noted before its parameter's update changes the step counts.</summary>
    private readonly List<int> _sharedRefreshes = [];

    /// <summary>Before parameter <paramref name="index"/> is updated: notes whether the update refreshes a shared
    /// projection.</summary>
    private void NoteSharedRefresh(int index)
    {
        if (_shards != null && _factored?.RefreshesSharedProjection(index) == true) _sharedRefreshes.Add(index);
    }

    /// <summary>On a rank that does not own parameter <paramref name="index"/>, in place of its update: counts the step
    /// its owner takes; a plan (one process standing for rank 0, no other ranks) refreshes the projection it would
    /// receive.</summary>
    private void FollowStep(int index) => _factored?.FollowStep(index, refresh: _planOfRanks && _sharedRefreshes.Contains(index));

    /// <summary>Updates the parameters this rank owns, then every rank receives each parameter from its owner, and the
    /// projections the step refreshed from theirs.</summary>
    private void StepShardedParameters()
    {
        var parameters = Optimizer.Parameters;
        for (int i = 0; i < parameters.Count; i++) NoteSharedRefresh(i);
        Optimizer.BeginStep();
        for (int i = 0; i < parameters.Count; i++)
            if (Owns(i)) Optimizer.StepParameter(i);
            else FollowStep(i);
        for (int i = 0; i < parameters.Count; i++) World.Broadcast([parameters[i]], _shards!.Owner(i));
        ShareRefreshedProjections();
    }

    /// <summary>After the step's updates: each owner broadcasts the shared projections it refreshed (none in a plan).</summary>
    private void ShareRefreshedProjections()
    {
        if (!_planOfRanks && _shards != null && _factored is { } projected && _sharedRefreshes.Count > 0)
            _shards.BroadcastFromOwners(World, _sharedRefreshes, projected.ProjectionState, projected.LoadProjectionState);
        _sharedRefreshes.Clear();
    }
}
